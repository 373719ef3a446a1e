"""``python -m ml.remote s3`` against a real S3 server (moto) on loopback: push, pull, verify."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from typing import Any

from tests.integration.dvc.conftest import FAKE_KEY_ID, FAKE_SECRET, REGION, Repo


def add_data(repo: Repo) -> dict[str, bytes]:
    """A DVC-tracked file and directory (like a model bundle), committed."""
    files = {
        "data.bin": os.urandom(200_000),
        "bundle/model.onnx": os.urandom(50_000),
        "bundle/manifest.json": b'{"name": "m", "version": "0123456789ab"}',
    }
    for name, content in files.items():
        path = repo.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    repo.dvc("add", "-q", "data.bin", "bundle")
    repo.commit("track data")
    return files


def configure(repo: Repo, endpoint: str, bucket: str, *extra: str) -> None:
    repo.python_m(
        "ml.remote",
        "s3",
        "--bucket",
        bucket,
        "--prefix",
        "berth/dvc",
        "--endpoint-url",
        endpoint,
        "--region",
        REGION,
        *extra,
    )


def remote_section(config: str, name: str) -> dict[str, str]:
    """The options of ``['remote "<name>"']`` in a DVC config file's text."""
    options: dict[str, str] = {}
    inside = False
    for line in config.splitlines():
        if line.startswith("["):
            inside = line == f"['remote \"{name}\"']"
        elif inside and "=" in line:
            key, _, value = line.partition("=")
            options[key.strip()] = value.strip()
    return options


def drop_local_copies(repo: Repo, files: dict[str, bytes]) -> None:
    shutil.rmtree(repo.root / ".dvc" / "cache")
    for name in files:
        (repo.root / name).unlink()


def remote_objects(s3: Any, bucket: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket)
    return [str(item["Key"]) for item in listing.get("Contents", [])]


def assert_no_secret_committed(repo: Repo) -> None:
    config = repo.project_config
    assert FAKE_SECRET not in config
    assert FAKE_KEY_ID not in config
    assert not re.search(r"access_key_id|secret_access_key|session_token|profile", config)
    # .dvc/config.local must never be committable.
    repo.run("git", "check-ignore", "-q", ".dvc/config.local")
    assert ".dvc/config.local" not in repo.run("git", "status", "--porcelain").stdout


def test_push_delete_cache_pull_gives_identical_bytes(
    repo: Repo, s3_endpoint: str, bucket: str, s3_client: Any
) -> None:
    files = add_data(repo)
    configure(repo, s3_endpoint, bucket)

    assert remote_section(repo.project_config, "s3") == {
        "url": f"s3://{bucket}/berth/dvc",
        "verify": "true",
        "endpointurl": s3_endpoint,
        "region": REGION,
    }
    assert remote_section(repo.project_config, "local"), "the local-directory remote must stay"
    assert repo.dvc("remote", "default").stdout.strip() == "s3"
    assert_no_secret_committed(repo)
    # No credentials were asked to be stored: DVC reads them from the environment.
    assert FAKE_SECRET not in (repo.root / ".dvc" / "config.local").read_text()

    repo.dvc("push")
    keys = remote_objects(s3_client, bucket)
    assert keys and all(key.startswith("berth/dvc/files/md5/") for key in keys)

    drop_local_copies(repo, files)
    repo.dvc("pull")
    for name, content in files.items():
        assert (repo.root / name).read_bytes() == content, name
    assert "in sync" in repo.dvc("status", "--cloud").stdout


def test_credentials_from_env_go_to_config_local_only(
    repo: Repo, s3_endpoint: str, bucket: str
) -> None:
    files = add_data(repo)
    configure(repo, s3_endpoint, bucket, "--credentials-from-env")

    local = repo.root / ".dvc" / "config.local"
    assert FAKE_SECRET in local.read_text()
    assert local.stat().st_mode & 0o077 == 0, "config.local must be private"
    assert_no_secret_committed(repo)

    # The stored credentials alone are enough: none left in the environment.
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        repo.env.pop(var)
    repo.dvc("push")
    drop_local_copies(repo, files)
    repo.dvc("pull")
    assert (repo.root / "data.bin").read_bytes() == files["data.bin"]


def test_local_switches_the_default_back(repo: Repo, s3_endpoint: str, bucket: str) -> None:
    configure(repo, s3_endpoint, bucket)
    assert repo.dvc("remote", "default").stdout.strip() == "s3"
    repo.python_m("ml.remote", "local")
    assert repo.dvc("remote", "default").stdout.strip() == "local"
    assert remote_section(repo.project_config, "s3")["verify"] == "true"


def corrupt_remote(s3: Any, bucket: str, content: bytes) -> None:
    """Flip bytes of the remote object that holds ``content``; its name stays the same."""
    md5 = hashlib.md5(content).hexdigest()  # DVC names objects by md5
    key = f"berth/dvc/files/md5/{md5[:2]}/{md5[2:]}"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(b ^ 0xFF for b in body[:64]) + body[64:])


def test_verify_refuses_a_corrupted_remote_object(
    repo: Repo, s3_endpoint: str, bucket: str, s3_client: Any
) -> None:
    files = add_data(repo)
    configure(repo, s3_endpoint, bucket)
    repo.dvc("push")
    corrupt_remote(s3_client, bucket, files["data.bin"])
    drop_local_copies(repo, files)

    pulled = repo.dvc("pull", check=False)

    assert pulled.returncode != 0, pulled.stdout + pulled.stderr
    assert not (repo.root / "data.bin").exists(), "corrupted bytes reached the workspace"
    md5 = hashlib.md5(files["data.bin"]).hexdigest()
    assert not (repo.root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).exists()
    # The intact objects still arrive.
    assert (repo.root / "bundle" / "model.onnx").read_bytes() == files["bundle/model.onnx"]


def test_without_verify_a_corrupted_object_is_checked_out_silently(
    repo: Repo, s3_endpoint: str, bucket: str, s3_client: Any
) -> None:
    """Why verify is on: DVC trusts the object name and checks out whatever bytes it got."""
    files = add_data(repo)
    configure(repo, s3_endpoint, bucket)
    repo.dvc("remote", "modify", "s3", "verify", "false")
    repo.dvc("push")
    corrupt_remote(s3_client, bucket, files["data.bin"])
    drop_local_copies(repo, files)

    repo.dvc("pull")

    assert (repo.root / "data.bin").read_bytes() != files["data.bin"]
