"""``python -m ml.versions`` in a throwaway project with two released tags.

The pipeline is a stand-in with Berth's shape (``evaluate`` writes ``reports/metrics.json``,
``export`` writes ``models/<name>/manifest.json``), so ``dvc repro`` takes a second.
"""

from __future__ import annotations

import json
import shutil
import textwrap

from ml import versions
from tests.integration.dvc.conftest import Repo

PIPELINE = textwrap.dedent(
    """\
    stages:
      evaluate:
        cmd: python stage.py evaluate
        deps: [stage.py]
        params: [quality]
        metrics:
          - reports/metrics.json
      export:
        cmd: python stage.py export
        deps: [stage.py, reports/metrics.json]
        params: [quality]
        outs:
          - models/toy-model
    """
)
STAGE = textwrap.dedent(
    """\
    import json, pathlib, sys, yaml
    quality = yaml.safe_load(open("params.yaml"))["quality"]
    if sys.argv[1] == "evaluate":
        pathlib.Path("reports").mkdir(exist_ok=True)
        pathlib.Path("reports/metrics.json").write_text(json.dumps({"accuracy": quality}))
    else:
        out = pathlib.Path("models/toy-model")
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.onnx").write_bytes(str(quality).encode())
        version = f"{int(quality * 1000):012x}"
        (out / "manifest.json").write_text(json.dumps(
            {"name": "toy-model", "version": version, "created_at": "2026-01-01T00:00:00Z"}))
    """
)


def release(repo: Repo, quality: float, tag: str) -> None:
    (repo.root / "params.yaml").write_text(f"quality: {quality}\n")
    repo.dvc("repro", "-q")
    repo.commit(f"model {tag}")
    repo.run("git", "tag", tag)


def test_lists_tagged_versions_with_bundle_version_and_metrics(repo: Repo) -> None:
    (repo.root / "dvc.yaml").write_text(PIPELINE)
    (repo.root / "stage.py").write_text(STAGE)
    (repo.root / ".gitignore").write_text("/models/\n/reports/\n")
    release(repo, 0.91, "model-v1")
    release(repo, 0.95, "model-v2")
    repo.run("git", "tag", "unrelated")

    listed = versions.list_versions(repo.root)

    assert [v.tag for v in listed] == ["model-v2", "model-v1"]
    v2, v1 = listed
    assert (v1.name, v1.version, v1.metrics) == ("toy-model", f"{910:012x}", {"accuracy": 0.91})
    assert (v2.version, v2.metrics) == (f"{950:012x}", {"accuracy": 0.95})
    assert v1.bundle_path == "models/toy-model"
    assert v1.dvc_hash and v1.dvc_hash.endswith(".dir") and v1.dvc_hash != v2.dvc_hash
    assert not v1.problems and not v2.problems

    # A fresh control node: nothing cached, the data comes from the default remote.
    repo.dvc("push", "--all-tags")
    shutil.rmtree(repo.root / ".dvc" / "cache")
    shutil.rmtree(repo.root / "models")
    cli = repo.python_m("ml.versions", "--json")
    assert [(v["tag"], v["version"], v["metrics"]) for v in json.loads(cli.stdout)] == [
        ("model-v2", f"{950:012x}", {"accuracy": 0.95}),
        ("model-v1", f"{910:012x}", {"accuracy": 0.91}),
    ]
    table = repo.python_m("ml.versions").stdout
    assert table.splitlines()[0].split() == ["TAG", "DATE", "BUNDLE", "VERSION", "METRICS"]
    assert "accuracy=0.91" in table and f"{910:012x}" in table


def test_a_tag_without_data_is_listed_with_the_reason(repo: Repo) -> None:
    (repo.root / "notes.txt").write_text("no pipeline here\n")
    repo.commit("no pipeline")
    repo.run("git", "tag", "model-v1")
    (repo.root / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  export:\n    cmd: x\n    outs:\n"
        "    - path: models/gone\n      hash: md5\n"
        "      md5: 0123456789abcdef0123456789abcdef.dir\n"
    )
    repo.commit("lock without data")
    repo.run("git", "tag", "model-v2")

    v2, v1 = versions.list_versions(repo.root)

    assert v1.problems == ["no dvc.lock at this tag"]
    assert v2.bundle_path == "models/gone" and v2.version is None
    assert len(v2.problems) == 1 and v2.problems[0].startswith("manifest.json unavailable")
    table = versions.render_table([v2, v1])
    assert "model-v1: no dvc.lock at this tag" in table
