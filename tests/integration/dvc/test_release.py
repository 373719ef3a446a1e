"""``python -m ml.release fetch``: the control node's way to get one model version for a deploy.

A throwaway git+DVC project whose ``export`` stage copies one of two real, servable bundles (the
repository's exported wine bundle and a variant with another version), so what comes back can be
loaded by the server's own loader.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from app.services.manifest import Manifest, compute_version
from app.services.model_store import load_bundle
from ml.bundle import UNSTAMPED_REV
from ml.paths import PROJECT_ROOT
from tests.integration.dvc.conftest import Repo

NAME = "wine-classifier"
PIPELINE = textwrap.dedent(
    f"""\
    stages:
      export:
        cmd: python stage.py
        deps: [stage.py, src]
        params: [which]
        outs:
          - models/{NAME}
    """
)
STAGE = textwrap.dedent(
    f"""\
    import pathlib, shutil, yaml
    which = yaml.safe_load(open("params.yaml"))["which"]
    out = pathlib.Path("models/{NAME}")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(f"src/{{which}}", out)
    """
)


def _variant(source: Path, target: Path) -> str:
    """A copy of ``source`` with a wider range for the first feature: a new, valid version."""
    shutil.copytree(source, target)
    raw: dict[str, Any] = json.loads((source / "manifest.json").read_text())
    raw["features"][0]["max"] += 1.0
    manifest = Manifest.model_validate({**raw, "version": "0" * 12})
    raw["version"] = compute_version(
        manifest.format, dict(manifest.files), list(manifest.features), manifest.output
    )
    (target / "manifest.json").write_text(json.dumps(raw, indent=2))
    return str(raw["version"])


@pytest.fixture
def released(repo: Repo) -> tuple[Repo, dict[str, str]]:
    exported = PROJECT_ROOT / "models" / NAME
    if not (exported / "manifest.json").exists():
        pytest.fail(f"{exported} is missing: run `make model` (dvc repro) first")
    v1 = json.loads((exported / "manifest.json").read_text())["version"]
    shutil.copytree(exported, repo.root / "src" / "v1")
    v2 = _variant(exported, repo.root / "src" / "v2")
    (repo.root / "dvc.yaml").write_text(PIPELINE)
    (repo.root / "stage.py").write_text(STAGE)
    (repo.root / ".gitignore").write_text("/models/\n")
    for which, tag in (("v1", "model-v1"), ("v2", "model-v2")):
        (repo.root / "params.yaml").write_text(f"which: {which}\nexport:\n  model_name: {NAME}\n")
        repo.dvc("repro", "-q")
        repo.commit(f"model {tag}")
        repo.run("git", "tag", tag)
    repo.dvc("push", "--all-tags", "-q")
    return repo, {"model-v1": v1, "model-v2": v2}


def _fetch(repo: Repo, out: Path, version: str = "", check: bool = True) -> Any:
    args = ["ml.release", "fetch", "--repo", str(repo.root), "--out", str(out)]
    result = repo.python_m(*args, *(["--version", version] if version else []), check=check)
    return json.loads(result.stdout) if check else result


def test_fetch_by_tag_from_the_remote_is_stamped_and_servable(
    released: tuple[Repo, dict[str, str]], tmp_path: Path
) -> None:
    repo, versions = released
    shutil.rmtree(repo.root / ".dvc" / "cache")  # a fresh control node: only the remote has it
    shutil.rmtree(repo.root / "models")
    got = _fetch(repo, tmp_path / "v1" / NAME, "model-v1")
    commit = repo.run("git", "rev-list", "-n", "1", "model-v1").stdout.strip()
    assert (got["version"], got["git_rev"]) == (versions["model-v1"], commit)
    assert got["source"].startswith("tag model-v1")
    model = load_bundle(Path(got["bundle_dir"]))
    assert model.version == versions["model-v1"] and model.manifest.git_rev == commit
    assert model.manifest.created_at.year > 2000  # the commit time, not the placeholder


def test_fetch_by_bundle_version_finds_its_tag(
    released: tuple[Repo, dict[str, str]], tmp_path: Path
) -> None:
    repo, versions = released
    got = _fetch(repo, tmp_path / "x" / NAME, versions["model-v1"])
    assert got["source"].startswith("tag model-v1") and got["version"] == versions["model-v1"]


def test_fetch_without_version_takes_the_working_tree_bundle(
    released: tuple[Repo, dict[str, str]], tmp_path: Path
) -> None:
    repo, versions = released
    got = _fetch(repo, tmp_path / "wt" / NAME)
    head = repo.run("git", "rev-parse", "HEAD").stdout.strip()
    assert (got["version"], got["git_rev"]) == (versions["model-v2"], head)
    raw = json.loads((repo.root / "models" / NAME / "manifest.json").read_text())
    assert raw["git_rev"] == UNSTAMPED_REV  # the DVC output itself is never modified


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("model-v9", "not a git tag and not a 12-hex-digit bundle version"),
        ("0123456789ab", "no release tag (model-v*) has a bundle with it"),
    ],
)
def test_unknown_version_is_refused_with_the_reason(
    released: tuple[Repo, dict[str, str]], tmp_path: Path, version: str, message: str
) -> None:
    repo, _ = released
    result = _fetch(repo, tmp_path / "x" / NAME, version, check=False)
    assert result.returncode == 1
    assert message in result.stderr and "model-v1" in result.stderr
    assert not (tmp_path / "x").exists()
