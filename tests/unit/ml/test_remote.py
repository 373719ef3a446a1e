"""``python -m ml.remote`` refuses anything that would put a credential in the committed config.

Every refusal happens before DVC runs, so ``.dvc/config`` is left byte-for-byte unchanged. The
round trips against a real S3 server are in ``tests/integration/dvc/test_remote_s3.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ml import remote
from ml.remote import RemoteError, S3Remote, check_no_secrets, credentials_from_env

CONFIG = "[core]\n    remote = local\n['remote \"local\"']\n    url = ../.dvc-storage\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    for var in remote.ENV_CREDENTIALS:
        monkeypatch.delenv(var, raising=False)
    return tmp_path


BASE = ["s3", "--bucket", "acme-models"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint-url", "https://AKIAX:sekrit@minio.lan:9000"], "contains credentials"),
        (["-o", "secret_access_key=sekrit"], "would write a credential"),
        (["-o", "access_key_id=AKIAX"], "would write a credential"),
        (["-o", "profile=ops"], "would write a credential"),
        (["--secret-access-key", "sekrit"], "not accepted on the command line"),
        (["--access-key-id", "AKIAX"], "not accepted on the command line"),
        (["--credentials-from-env"], "needs AWS_ACCESS_KEY_ID"),
        (["--name", "local"], "remote name"),
        (["-o", "verify=false"], "set by its own flag"),
    ],
)
def test_refusals_leave_the_config_untouched(
    project: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert remote.main([*BASE, *args]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "sekrit" not in err
    assert (project / ".dvc" / "config").read_text() == CONFIG


@pytest.mark.parametrize(
    "bucket", ["AKIAX:sekrit@acme", "s3://acme", "Acme", "ab", "acme/models", "a..b"]
)
def test_bucket_must_be_a_bare_bucket_name(project: Path, bucket: str) -> None:
    assert remote.main(["s3", "--bucket", bucket]) == 1
    assert (project / ".dvc" / "config").read_text() == CONFIG


def test_outside_a_dvc_project_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert remote.main(BASE) == 1
    assert "not inside a DVC project" in capsys.readouterr().err


def test_credentials_need_a_git_ignored_config_local(project: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    with pytest.raises(RemoteError, match="not ignored by git"):
        remote.require_ignored(project, ".dvc/config.local")
    (project / ".gitignore").write_text("*.local\n")
    remote.require_ignored(project, ".dvc/config.local")


def test_project_settings_hold_no_credentials() -> None:
    s3 = S3Remote(
        bucket="acme-models",
        prefix="/berth/dvc/",
        endpoint_url="http://127.0.0.1:9000",
        region="eu-central-1",
        profile="ops",
        options={"sse": "AES256"},
    )
    s3.validate()
    assert s3.url == "s3://acme-models/berth/dvc"
    assert s3.project_settings() == {
        "verify": "true",
        "endpointurl": "http://127.0.0.1:9000",
        "region": "eu-central-1",
        "sse": "AES256",
    }


def test_credentials_from_env_reads_the_aws_variables() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIAX", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    assert credentials_from_env(env) == {
        "access_key_id": "AKIAX",
        "secret_access_key": "s",
        "session_token": "t",
    }


def test_check_no_secrets_catches_a_leaked_value(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("['remote \"s3\"']\n    url = s3://b/p\n    note = hunter2\n")
    check_no_secrets(config, ["other"])
    with pytest.raises(RemoteError, match="credential value"):
        check_no_secrets(config, ["hunter2"])
    config.write_text("['remote \"s3\"']\n    secret_access_key = x\n")
    with pytest.raises(RemoteError, match="secret_access_key"):
        check_no_secrets(config, [])
