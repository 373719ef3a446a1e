"""Released model versions, from training to serving, on the shared provisioned host.

A throwaway git+DVC project trains a real model (the repository's pipeline with another ``C``),
releases it as a git tag and ``dvc push``es it to a real S3 server (moto) that listens on the
control node's end of the test host's link (``berth.vps.config.gateway``: an address our own
code created, reachable by that host only). Then ``playbooks/deploy.yml -e model_version=<tag>``
ships it, and the host must serve it through nginx. The control node's DVC cache and workspace
copy are dropped after the push, so the bundle can only come from S3. Each test puts the version
that served before back (rollback.yml, no download).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from berth.vps.config import gateway
from ml.paths import PROJECT_ROOT
from tests.integration.dvc.conftest import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    REGION,
    Repo,
    isolated_environment,
)
from tests.system.ansible_run import run_playbook
from tests.system.conftest import Provisioned
from tests.system.test_deploy import deploy, history, http, served_version

pytestmark = pytest.mark.system

NAME = "wine-classifier"
PREFIX = "berth/dvc"

# The export stage runs the repository's whole pipeline (prepare, train, evaluate, export).
STAGE = (
    "from pathlib import Path\n"
    "from ml.paths import Paths\n"
    "from ml.pipeline import run_all\n"
    "run_all(Paths(Path.cwd()))\n"
)
PIPELINE = {
    "stages": {
        "export": {
            "cmd": "python pipeline.py",
            "deps": ["pipeline.py"],
            "params": ["prepare", "train", "export"],
            "outs": [f"models/{NAME}"],
        }
    }
}


@dataclass(frozen=True)
class Release:
    tag: str
    commit: str
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])


@dataclass(frozen=True)
class Project:
    repo: Repo
    endpoint: str
    bucket: str
    releases: dict[str, Release]


@pytest.fixture(scope="module")
def s3_on_gateway(provisioned: Provisioned) -> Iterator[str]:
    """A moto S3 server on the gateway address of the test host's link, for this module."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=gateway(provisioned.host.index), port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def train_and_release(repo: Repo, tag: str, c: float) -> Release:
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["train"]["hyperparams"]["C"] = c
    (repo.root / "params.yaml").write_text(yaml.safe_dump(params))
    repo.dvc("repro", "-q")
    manifest = json.loads((repo.root / "models" / NAME / "manifest.json").read_text())
    repo.commit(f"model {tag}: C={c}")
    repo.run("git", "tag", tag)
    commit = repo.run("git", "rev-list", "-n", "1", tag).stdout.strip()
    return Release(tag, commit, manifest)


@pytest.fixture(scope="module")
def project(
    s3_on_gateway: str, provisioned: Provisioned, tmp_path_factory: pytest.TempPathFactory
) -> Project:
    """A trained release (model-v1) pushed to S3; the control node keeps no copy."""
    base = tmp_path_factory.mktemp("release-project")
    env = isolated_environment(
        base / "home", no_proxy=f"127.0.0.1,localhost,{gateway(provisioned.host.index)}"
    )
    repo = Repo(base / "project", env)
    repo.root.mkdir()
    repo.run("git", "init", "-q", "-b", "main")
    repo.dvc("init", "-q")
    (repo.root / "pipeline.py").write_text(STAGE)
    (repo.root / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (repo.root / ".gitignore").write_text("/data/\n/reports/\n/models/candidate/\n")
    bucket = f"berth-sys-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_on_gateway,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )
    s3.create_bucket(Bucket=bucket)
    # The documented way: the remote in .dvc/config, the credentials in .dvc/config.local only,
    # so ansible-playbook's DVC finds them without any AWS variable in its environment.
    repo.python_m(
        "ml.remote",
        "s3",
        "--bucket",
        bucket,
        "--prefix",
        PREFIX,
        "--endpoint-url",
        s3_on_gateway,
        "--region",
        REGION,
        "--credentials-from-env",
    )
    repo.commit("dvc init, S3 remote")
    releases = {tag: train_and_release(repo, tag, 0.5) for tag in ("model-v1",)}
    repo.dvc("push", "--all-tags", "-q")
    # A fresh control node: no DVC cache, no exported bundle; only S3 has the data.
    shutil.rmtree(repo.root / ".dvc" / "cache")
    shutil.rmtree(repo.root / "models")
    return Project(repo, s3_on_gateway, bucket, releases)


def assert_serves(provisioned: Provisioned, release: Release) -> None:
    """/ready names the release's version and nginx answers its golden inputs as exported."""
    assert served_version(provisioned) == release.version
    golden = release.manifest["golden"]
    status, answer = http(
        f"http://{provisioned.host.address}/v1/predict",
        {"records": [pair["input"] for pair in golden]},
    )
    assert status == 200, answer
    assert answer["model_version"] == release.version and answer["fallback"] is False
    assert answer["predictions"] == [pair["output"]["prediction"] for pair in golden]


@pytest.fixture
def original(provisioned: Provisioned) -> Iterator[str]:
    """The version that serves before the test; switched back to afterwards (rollback.yml: it
    is still on the server, nothing is downloaded)."""
    version = served_version(provisioned)
    yield version
    if served_version(provisioned) != version:
        back = run_playbook(
            provisioned.inventory,
            "playbooks/rollback.yml",
            "-e",
            f"model_rollback_version={version}",
        )
        assert back.returncode == 0, back.output[-3000:]
        assert served_version(provisioned) == version


def test_release_pushed_to_s3_deploys_by_tag_and_serves(
    provisioned: Provisioned, original: str, project: Project
) -> None:
    release = project.releases["model-v1"]
    assert release.version != original
    started = time.monotonic()
    run = deploy(
        provisioned, "-e", f"model_project_dir={project.repo.root}", "-e", "model_version=model-v1"
    )
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.output[-4000:]
    print(f"deploy by tag (control node fetch from S3): {seconds:.1f} s")
    assert_serves(provisioned, release)
    last = history(provisioned)[-1]
    # The control node stamped the tag's commit into the manifest it shipped.
    assert (last["action"], last["version"], last["git_rev"]) == (
        "deploy",
        release.version,
        release.commit,
    )
