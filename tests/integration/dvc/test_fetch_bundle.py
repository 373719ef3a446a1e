"""``python -m app.fetch_bundle`` (servers pull a release from S3) against a real S3 server (moto).

A throwaway git+DVC project releases the repository's exported bundle as ``model-v1`` and
``dvc push``es it to an S3 remote; the control node's part (``python -m ml.release locate``)
finds the DVC directory hash from git alone, and the server's part downloads by that hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.fetch_bundle import (
    Fetcher,
    FetchError,
    Remote,
    download,
    manifest_bytes,
    read_credentials,
    read_manifest,
    s3_client,
)
from app.services.manifest import Manifest
from app.services.model_store import load_bundle
from ml.bundle import manifest_bytes as ml_manifest_bytes
from ml.paths import PROJECT_ROOT
from tests.integration.dvc.conftest import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    REGION,
    Repo,
    isolated_environment,
)
from tests.integration.dvc.test_release import NAME, PIPELINE, STAGE
from tests.integration.dvc.test_remote_s3 import configure

PREFIX = "berth/dvc"


@dataclass(frozen=True)
class Pushed:
    repo: Repo
    endpoint: str
    bucket: str
    located: dict[str, str]
    version: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{PREFIX}"

    def fetcher(self) -> Fetcher:
        credentials = {"access_key_id": FAKE_KEY_ID, "secret_access_key": FAKE_SECRET}
        return Fetcher(Remote.parse(self.url), s3_client(self.endpoint, REGION, credentials))

    def key(self, md5: str) -> str:
        return f"{PREFIX}/files/md5/{md5[:2]}/{md5[2:]}"


@pytest.fixture(scope="module")
def pushed(s3_endpoint: str, s3_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    """One release for the module; tests that damage an object put it back."""
    exported = PROJECT_ROOT / "models" / NAME
    if not (exported / "manifest.json").exists():
        pytest.fail(f"{exported} is missing: run `make model` (dvc repro) first")
    base = tmp_path_factory.mktemp("fetch-bundle")
    repo = Repo(base / "project", isolated_environment(base / "home"))
    repo.root.mkdir()
    repo.run("git", "init", "-q", "-b", "main")
    repo.dvc("init", "-q")
    bucket = f"berth-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    shutil.copytree(exported, repo.root / "src" / "v1")
    (repo.root / "dvc.yaml").write_text(PIPELINE)
    (repo.root / "stage.py").write_text(STAGE)
    (repo.root / ".gitignore").write_text("/models/\n")
    (repo.root / "params.yaml").write_text(f"which: v1\nexport:\n  model_name: {NAME}\n")
    configure(repo, s3_endpoint, bucket)
    repo.dvc("repro", "-q")
    repo.commit("model-v1")
    repo.run("git", "tag", "model-v1")
    repo.dvc("push", "-q")
    located = json.loads(
        repo.python_m(
            "ml.release", "locate", "--repo", str(repo.root), "--version", "model-v1"
        ).stdout
    )
    version = json.loads((exported / "manifest.json").read_text())["version"]
    return Pushed(repo, s3_endpoint, bucket, located, version)


def test_locate_reads_the_directory_hash_from_the_tag_without_dvc(pushed: Pushed) -> None:
    lock = (pushed.repo.root / "dvc.lock").read_text()
    commit = pushed.repo.run("git", "rev-list", "-n", "1", "model-v1").stdout.strip()
    assert pushed.located["dir_md5"].endswith(".dir") and pushed.located["dir_md5"] in lock
    assert (pushed.located["tag"], pushed.located["git_rev"]) == ("model-v1", commit)
    assert pushed.located["path"] == f"models/{NAME}"


def test_locate_finds_the_tag_of_a_bundle_version(pushed: Pushed) -> None:
    root = str(pushed.repo.root)
    version = pushed.version
    found = pushed.repo.python_m("ml.release", "locate", "--repo", root, "--version", version)
    assert json.loads(found.stdout) == pushed.located
    unknown = pushed.repo.python_m(
        "ml.release", "locate", "--repo", root, "--version", "0123456789ab", check=False
    )
    assert unknown.returncode == 1
    assert f"model-v1={pushed.version}" in unknown.stderr


def test_locate_refuses_the_working_tree_and_unknown_tags(pushed: Pushed) -> None:
    root = str(pushed.repo.root)
    empty = pushed.repo.python_m("ml.release", "locate", "--repo", root, check=False)
    assert empty.returncode == 1 and "servers pull released versions only" in empty.stderr
    unknown = pushed.repo.python_m(
        "ml.release", "locate", "--repo", root, "--version", "v9", check=False
    )
    assert unknown.returncode == 1 and "not a git tag" in unknown.stderr
    assert "model-v1" in unknown.stderr


def test_download_gives_the_stamped_servable_bundle(pushed: Pushed, tmp_path: Path) -> None:
    out = tmp_path / "models" / ".tmp-x"
    (tmp_path / "models").mkdir()
    # The server's way: the CLI, credentials in a private file, none in the environment or
    # the arguments.
    credentials = tmp_path / "credentials.json"
    credentials.write_text(
        json.dumps({"access_key_id": FAKE_KEY_ID, "secret_access_key": FAKE_SECRET})
    )
    credentials.chmod(0o600)
    env = {k: v for k, v in pushed.repo.env.items() if not k.startswith("AWS_ACCESS")}
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    args = [
        sys.executable,
        "-m",
        "app.fetch_bundle",
        "download",
        "--url",
        pushed.url,
        "--dir-md5",
        pushed.located["dir_md5"],
        "--endpoint-url",
        pushed.endpoint,
        "--region",
        REGION,
        "--git-rev",
        pushed.located["git_rev"],
        "--created-at",
        pushed.located["created_at"],
        "--version",
        pushed.version,
        "--out",
        str(out),
        "--credentials-file",
        str(credentials),
    ]
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"version": pushed.version, "files": 2}
    assert FAKE_SECRET not in result.stdout + result.stderr
    model = load_bundle(out)
    assert model.version == pushed.version
    assert model.manifest.git_rev == pushed.located["git_rev"]
    assert model.manifest.created_at.isoformat() == pushed.located["created_at"]
    assert out.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o644}
    # Only the stamp differs from what was exported.
    exported = PROJECT_ROOT / "models" / NAME
    for name in model.manifest.files:
        assert (out / name).read_bytes() == (exported / name).read_bytes()


def test_manifest_alone_is_read_and_stamped(pushed: Pushed) -> None:
    manifest, files = read_manifest(pushed.fetcher(), pushed.located["dir_md5"], "abc123", None)
    assert manifest.version == pushed.version and manifest.git_rev == "abc123"
    assert set(files) == {"manifest.json", *manifest.files}


def _object_of(pushed: Pushed, name: str) -> str:
    files = pushed.fetcher().listing(pushed.located["dir_md5"])
    return pushed.key(files[name])


@contextmanager
def kept(s3: Any, bucket: str, key: str) -> Iterator[bytes]:
    """The object's bytes; the object is put back as it was afterwards."""
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        yield body
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_tampered_object_is_refused_and_nothing_is_written(
    pushed: Pushed, s3_client: Any, tmp_path: Path
) -> None:
    key = _object_of(pushed, "model.onnx")
    out = tmp_path / "bundle"
    with kept(s3_client, pushed.bucket, key) as body, pytest.raises(FetchError) as caught:
        flipped = body[:-1] + bytes([body[-1] ^ 1])
        s3_client.put_object(Bucket=pushed.bucket, Key=key, Body=flipped)
        download(pushed.fetcher(), pushed.located["dir_md5"], out, pushed.version)
    message = str(caught.value)
    assert f"s3://{pushed.bucket}/{key}" in message and "corrupted or was replaced" in message
    assert "dvc push" in message
    assert not out.exists()


def test_missing_object_names_the_key_and_says_to_push(
    pushed: Pushed, s3_client: Any, tmp_path: Path
) -> None:
    key = _object_of(pushed, "manifest.json")
    out = tmp_path / "bundle"
    with kept(s3_client, pushed.bucket, key), pytest.raises(FetchError) as caught:
        s3_client.delete_object(Bucket=pushed.bucket, Key=key)
        download(pushed.fetcher(), pushed.located["dir_md5"], out, pushed.version)
    message = str(caught.value)
    assert f"s3://{pushed.bucket}/{key} (manifest.json) is missing" in message
    assert "dvc push" in message
    assert not out.exists()


def test_missing_listing_fails_through_the_cli_with_the_key(pushed: Pushed) -> None:
    md5 = pushed.located["dir_md5"]
    result = pushed.repo.python_m(
        "app.fetch_bundle",
        "manifest",
        "--url",
        f"s3://{pushed.bucket}/other-prefix",
        "--dir-md5",
        md5,
        "--endpoint-url",
        pushed.endpoint,
        check=False,
    )
    assert result.returncode == 1
    assert f"s3://{pushed.bucket}/other-prefix/files/md5/{md5[:2]}/{md5[2:]}" in result.stderr
    assert "is missing from the DVC remote" in result.stderr


def test_a_version_other_than_expected_is_refused(pushed: Pushed, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="not 000000000000"):
        download(pushed.fetcher(), pushed.located["dir_md5"], tmp_path / "b", "0" * 12)
    assert not (tmp_path / "b").exists()


def test_the_listing_object_is_named_by_the_md5_of_its_bytes(
    pushed: Pushed, s3_client: Any
) -> None:
    """What Fetcher.get relies on for the .dir object (DVC's layout, checked with real DVC)."""
    md5 = pushed.located["dir_md5"]
    body = s3_client.get_object(Bucket=pushed.bucket, Key=pushed.key(md5))["Body"].read()
    assert hashlib.md5(body).hexdigest() == md5.removesuffix(".dir")


def test_manifest_is_written_as_the_exporter_writes_it() -> None:
    raw = (PROJECT_ROOT / "models" / NAME / "manifest.json").read_bytes()
    manifest = Manifest.model_validate_json(raw)
    assert manifest_bytes(manifest) == ml_manifest_bytes(manifest) == raw


def test_remote_url_is_checked() -> None:
    assert Remote.parse("s3://bucket-a/x/y/").key("ab" + "0" * 30) == (
        "x/y/files/md5/ab/" + "0" * 30
    )
    assert Remote.parse("s3://bucket-a").key("ab" + "0" * 30) == "files/md5/ab/" + "0" * 30
    with pytest.raises(FetchError, match="not a DVC remote URL"):
        Remote.parse("https://bucket-a/x")


def test_credentials_file_errors_never_show_its_content(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(f"access_key_id={FAKE_KEY_ID} secret={FAKE_SECRET}")
    with pytest.raises(FetchError) as caught:
        read_credentials(path)
    assert "is not JSON" in str(caught.value) and FAKE_SECRET not in str(caught.value)
    path.write_text(json.dumps({"access_key_id": FAKE_KEY_ID}))
    with pytest.raises(FetchError, match="both access_key_id and secret_access_key"):
        read_credentials(path)
    with pytest.raises(FetchError, match="cannot read the credentials file"):
        read_credentials(tmp_path / "absent.json")
