"""playbooks/deploy.yml and rollback.yml on the shared provisioned host.

A bundle the server's runtime refuses never serves; a good new version is served after the
deploy; rollback.yml puts the original back (so later tests see the host as site.yml left it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.services.manifest import Manifest, compute_version
from tests.system.ansible_run import REPO, run_playbook
from tests.system.conftest import Provisioned, bundle_manifest
from tests.system.test_site import http

pytestmark = pytest.mark.system


def variant_bundle(tmp_path: Path, *, break_golden: bool) -> tuple[Path, str]:
    """A copy of the exported bundle with a new version: a wider range for the first feature,
    and, when asked, a golden answer the model will not reproduce."""
    raw: dict[str, Any] = bundle_manifest()
    source = REPO / "models" / raw["name"]
    target = tmp_path / ("broken" if break_golden else "widened") / raw["name"]
    shutil.copytree(source, target)
    raw["features"][0]["max"] = raw["features"][0]["max"] + 1.0
    if break_golden:
        classes = raw["output"]["classes"]
        wrong = next(c for c in classes if c != raw["golden"][0]["output"]["prediction"])
        raw["golden"][0]["output"]["prediction"] = wrong
    manifest = Manifest.model_validate({**raw, "version": "0" * len(raw["version"])})
    raw["version"] = compute_version(
        manifest.format, dict(manifest.files), list(manifest.features), manifest.output
    )
    (target / "manifest.json").write_text(json.dumps(raw, indent=2))
    return target, raw["version"]


def served_version(provisioned: Provisioned) -> str:
    status, body = http(f"http://{provisioned.host.address}/v1/model")
    assert status == 200, body
    version: str = body["version"]
    return version


def test_bundle_refused_by_the_server_runtime_never_serves(
    provisioned: Provisioned, tmp_path: Path
) -> None:
    original = served_version(provisioned)
    bundle, version = variant_bundle(tmp_path, break_golden=True)
    run = run_playbook(
        provisioned.inventory, "playbooks/deploy.yml", "-e", f"model_bundle_dir={bundle}"
    )
    assert run.returncode != 0, run.output[-3000:]
    assert "bundle refused" in run.output and "golden" in run.output, run.output[-3000:]
    assert served_version(provisioned) == original
    assert version != original


def test_deploy_serves_a_new_version_and_rollback_restores_the_old(
    provisioned: Provisioned, tmp_path: Path
) -> None:
    original = served_version(provisioned)
    bundle, version = variant_bundle(tmp_path, break_golden=False)
    run = run_playbook(
        provisioned.inventory, "playbooks/deploy.yml", "-e", f"model_bundle_dir={bundle}"
    )
    assert run.returncode == 0, run.output[-4000:]
    assert served_version(provisioned) == version
    golden = bundle_manifest()["golden"][0]
    status, answer = http(
        f"http://{provisioned.host.address}/v1/predict", {"records": [golden["input"]]}
    )
    assert status == 200 and answer["model_version"] == version

    back = run_playbook(
        provisioned.inventory, "playbooks/rollback.yml", "-e", f"model_rollback_version={original}"
    )
    assert back.returncode == 0, back.output[-4000:]
    assert served_version(provisioned) == original


def test_rollback_to_an_unknown_version_is_refused(provisioned: Provisioned) -> None:
    run = run_playbook(
        provisioned.inventory,
        "playbooks/rollback.yml",
        "-e",
        "model_rollback_version=0123456789ab",
    )
    assert run.returncode != 0
    assert "is not on" in run.output, run.output[-3000:]
