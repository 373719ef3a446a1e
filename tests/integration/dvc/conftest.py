"""Fixtures for DVC round trips: a real S3 server (moto) on loopback and throwaway git+dvc repos.

Every subprocess gets an isolated environment: moto's fake credentials (from the environment,
never from a file), no AWS config or profile of this machine, no proxy for 127.0.0.1, a private
HOME so no global git or DVC configuration leaks in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from ml.paths import PROJECT_ROOT

# moto accepts any credentials; these exist only in the tests' environment.
FAKE_KEY_ID = "AKIAMOTOFAKEKEYID0000"
FAKE_SECRET = "moto-fake-secret-never-in-dvc-config"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"berth-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def isolated_environment(home: Path, no_proxy: str = "127.0.0.1,localhost") -> dict[str, str]:
    """The environment of a subprocess that sees moto's credentials and nothing of this machine:
    ``home`` (created) is its HOME; ``no_proxy`` the hosts it reaches without a proxy."""
    home.mkdir(parents=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DVC_", "GIT_")) and "proxy" not in key.lower()
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(PROJECT_ROOT),
        NO_PROXY=no_proxy,
        no_proxy=no_proxy,
        AWS_ACCESS_KEY_ID=FAKE_KEY_ID,
        AWS_SECRET_ACCESS_KEY=FAKE_SECRET,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="Berth Test",
        GIT_AUTHOR_EMAIL="test@berth.invalid",
        GIT_COMMITTER_NAME="Berth Test",
        GIT_COMMITTER_EMAIL="test@berth.invalid",
    )
    return env


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    return isolated_environment(tmp_path / "home")


@dataclass
class Repo:
    """A throwaway git + DVC project with a local-directory default remote, like Berth's."""

    root: Path
    env: dict[str, str]

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "dvc", *args, check=check)

    def python_m(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", *args, check=check)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)

    @property
    def project_config(self) -> str:
        return (self.root / ".dvc" / "config").read_text()


@pytest.fixture
def repo(tmp_path: Path, isolated_env: dict[str, str]) -> Repo:
    root = tmp_path / "project"
    root.mkdir()
    project = Repo(root, isolated_env)
    project.run("git", "init", "-q", "-b", "main")
    project.dvc("init", "-q")
    # What `dvc remote add -d local ...` and `dvc remote modify local verify true` write; written
    # directly because each dvc process costs ~0.4 s.
    (root / ".dvc" / "config").write_text(
        "[core]\n    remote = local\n    analytics = false\n"
        f"['remote \"local\"']\n    url = {tmp_path / 'dvc-storage'}\n    verify = true\n"
    )
    project.commit("dvc init")
    return project
