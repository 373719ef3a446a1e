"""Released model versions, from training to serving, on the shared provisioned host.

A throwaway git+DVC project trains a real model (the repository's pipeline with another ``C``),
releases it as a git tag and ``dvc push``es it to a real S3 server (moto) that listens on the
control node's end of the test host's link (``berth.vps.config.gateway``: an address our own
code created, reachable by that host only). Then ``playbooks/deploy.yml -e model_version=<tag>``
ships it, and the host must serve it through nginx: fetched by the control node with DVC (the
default), or downloaded by the host itself from S3 (``model_fetch=s3``). The control node's DVC
cache and workspace copy are dropped after the push, so the bundle can only come from S3. Each
test puts the version that served before back (rollback.yml, no download).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from berth.vps.config import gateway
from ml.paths import PROJECT_ROOT
from tests.integration.conftest import moto_server
from tests.integration.dvc.conftest import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    REGION,
    Repo,
    isolated_environment,
)
from tests.system.ansible_run import PlaybookRun, changed_tasks, run_playbook
from tests.system.conftest import Provisioned
from tests.system.test_deploy import deploy, history, http, served_version, versions_on_disk
from tests.system.test_site import deploy_sudo

pytestmark = pytest.mark.system

NAME = "wine-classifier"
PREFIX = "berth/dvc"
CREDENTIALS_FILE = "/etc/berth/model-s3-credentials.json"
# What the host gets (moto accepts any key; it does not enforce IAM, so "read-only" is the
# operator's policy, not checked here). Distinct from the control node's, so a leak is traceable.
SERVER_KEY_ID = "AKIASERVERREADONLY00"
SERVER_SECRET = f"server-read-only-{uuid.uuid4().hex}"
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
    with moto_server(gateway(provisioned.host.index)) as endpoint:
        yield endpoint


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
    """Three trained releases (model-v1..3) pushed to S3; the control node keeps no copy."""
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
    trained = (("model-v1", 0.5), ("model-v2", 0.3), ("model-v3", 0.2))
    releases = {tag: train_and_release(repo, tag, c) for tag, c in trained}
    assert len({r.version for r in releases.values()}) == 3, "the releases must differ"
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


def assert_last_deploy(provisioned: Provisioned, release: Release) -> None:
    """The newest deploy record is a deploy of ``release``, with the tag's commit."""
    last = history(provisioned)[-1]
    assert (last["action"], last["version"], last["git_rev"]) == (
        "deploy",
        release.version,
        release.commit,
    )


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
    # The control node stamped the tag's commit into the manifest it shipped.
    assert_last_deploy(provisioned, release)


def server_pull(
    provisioned: Provisioned, project: Project, tag: str, tmp_path: Path, *extra: str
) -> tuple[float, PlaybookRun]:
    """deploy.yml with model_fetch=s3; the credentials in a private extra-vars file, as a vault
    file would hold them (never on the command line). Wall time and the run."""
    secrets = tmp_path / "s3-credentials.yml"
    secrets.write_text(
        yaml.safe_dump(
            {"model_s3_access_key_id": SERVER_KEY_ID, "model_s3_secret_access_key": SERVER_SECRET}
        )
    )
    secrets.chmod(0o600)
    started = time.monotonic()
    run = deploy(
        provisioned,
        "-e",
        f"model_project_dir={project.repo.root}",
        "-e",
        f"model_version={tag}",
        "-e",
        "model_fetch=s3",
        "-e",
        f"model_s3_url=s3://{project.bucket}/{PREFIX}",
        "-e",
        f"model_s3_endpoint_url={project.endpoint}",
        "-e",
        f"model_s3_region={REGION}",
        "-e",
        f"@{secrets}",
        *extra,
    )
    seconds = time.monotonic() - started
    assert SERVER_SECRET not in run.output and FAKE_SECRET not in run.output
    return seconds, run


def test_server_pulls_the_release_from_s3_itself(
    provisioned: Provisioned, original: str, project: Project, tmp_path: Path
) -> None:
    release = project.releases["model-v2"]
    assert release.version not in versions_on_disk(provisioned)
    try:
        seconds, run = server_pull(provisioned, project, "model-v2", tmp_path)
        output = run.output
        assert run.returncode == 0, output[-4000:]
        print(f"deploy by tag (server download from S3): {seconds:.1f} s")
        # The host downloaded it; the control node uploaded nothing.
        assert "TASK [model : ship | Download the bundle from S3" in output
        upload = output.split("TASK [model : ship | Upload the bundle under a temporary name]")[1]
        upload = upload.split("TASK [")[0]
        assert "skipping:" in upload and "changed:" not in upload, upload
        assert_serves(provisioned, release)
        # Stamped on the host with the tag's commit, which the control node read from git.
        assert_last_deploy(provisioned, release)
        mode = deploy_sudo(provisioned.host, f"stat -c '%a %U %G' {CREDENTIALS_FILE}").strip()
        assert mode == "600 root root"
        # The same deploy again, in check mode: it reads S3 but would change nothing.
        _, again = server_pull(provisioned, project, "model-v2", tmp_path, "--check", "--diff")
        assert again.returncode == 0, again.output[-4000:]
        assert again.counts(provisioned.host.name)["changed"] == 0, changed_tasks(again.output)
        assert served_version(provisioned) == release.version
    finally:
        deploy_sudo(provisioned.host, f"rm -f {CREDENTIALS_FILE}")


def test_server_pull_of_a_tampered_object_keeps_the_old_version_serving(
    provisioned: Provisioned, original: str, project: Project, tmp_path: Path
) -> None:
    release = project.releases["model-v3"]
    s3 = boto3.client(
        "s3",
        endpoint_url=project.endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )
    lock = yaml.safe_load(project.repo.run("git", "show", "model-v3:dvc.lock").stdout)
    dir_md5 = lock["stages"]["export"]["outs"][0]["md5"]
    listing_key = f"{PREFIX}/files/md5/{dir_md5[:2]}/{dir_md5[2:]}"
    listing = json.loads(s3.get_object(Bucket=project.bucket, Key=listing_key)["Body"].read())
    onnx = next(entry["md5"] for entry in listing if entry["relpath"] == "model.onnx")
    key = f"{PREFIX}/files/md5/{onnx[:2]}/{onnx[2:]}"
    body = s3.get_object(Bucket=project.bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=project.bucket, Key=key, Body=body[:-1] + bytes([body[-1] ^ 1]))
    try:
        _, run = server_pull(provisioned, project, "model-v3", tmp_path)
    finally:
        deploy_sudo(provisioned.host, f"rm -f {CREDENTIALS_FILE}")
        s3.put_object(Bucket=project.bucket, Key=key, Body=body)
    output = run.output
    assert run.returncode != 0, output[-3000:]
    assert f"s3://{project.bucket}/{key} (model.onnx) has md5" in output, output[-3000:]
    assert "corrupted or was replaced" in output
    assert served_version(provisioned) == original
    assert release.version not in versions_on_disk(provisioned)
    leftovers = deploy_sudo(provisioned.host, "find /srv/berth/models -maxdepth 1 -name '.tmp-*'")
    assert leftovers.strip() == ""
