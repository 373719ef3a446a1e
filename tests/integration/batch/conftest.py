"""Real servers on loopback for batch scoring: PostgreSQL (initdb into a temp dir, as a
non-root user, on a free port) and moto's S3 server; plus the example bundle.

PostgreSQL comes from the Debian package `postgresql` (requirements/apt.txt). Missing binaries
fail the tests with that hint: they are never skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from ml.paths import Paths
from ml.pipeline import run_all
from tests.unit.conftest import make_root

FAKE_KEY_ID = "AKIAMOTOFAKEKEYID0000"
FAKE_SECRET = "moto-fake-secret-batch"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    paths: Paths = make_root(tmp_path_factory.mktemp("pipeline"))
    run_all(paths)
    return next(p for p in paths.models_dir.iterdir() if (p / "manifest.json").exists())


def postgres_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    found = shutil.which("initdb")
    if candidates:
        return candidates[0].parent
    if found:
        return Path(found).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) are missing: install the Debian package "
        "`postgresql` (listed in requirements/apt.txt; scripts/install-system-deps.sh)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Postgres:
    bindir: Path
    data: Path
    port: int
    user: str | None  # OS user that runs the server (None: this one)

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=berth_test dbname=postgres connect_timeout=5"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")
        if done.returncode != 0:
            log = (
                (self.data.parent / "server.log").read_text(errors="replace")[-2000:]
                if (self.data.parent / "server.log").exists()
                else ""
            )
            raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stderr}\n{log}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1"
        log = str(self.data.parent / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def sql(self, statement: str, params: Any = None) -> list[Any]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    bindir = postgres_bindir()
    user = None
    base = Path(tempfile.mkdtemp(prefix="berth-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        user = "postgres" if _user_exists("postgres") else "nobody"
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    server = Postgres(bindir, base / "data", free_port(), user)
    try:
        server._run(
            "initdb", "-D", str(server.data), "-U", "berth_test", "--auth=trust", "-E", "UTF8"
        )
        server.start()
        yield server
        server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def table(postgres: Postgres, bundle_dir: Path) -> Callable[..., str]:
    """A fresh table of records with the bundle's features; returns its name."""
    import json
    import uuid

    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    features = [f["name"] for f in manifest["features"]]
    inputs = [pair["input"] for pair in manifest["golden"]]
    name = f"incoming_{uuid.uuid4().hex[:8]}"
    columns = ", ".join(f'"{f}" double precision' for f in features)
    postgres.sql(
        f"CREATE TABLE {name} (id bigserial PRIMARY KEY, "
        f"arrived timestamptz NOT NULL DEFAULT now(), {columns})"
    )

    def insert(rows: int, arrived: str | None = None) -> str:
        for i in range(rows):
            record = inputs[i % len(inputs)]
            names = ", ".join(f'"{f}"' for f in features) + (", arrived" if arrived else "")
            values = [record[f] for f in features] + ([arrived] if arrived else [])
            marks = ", ".join(["%s"] * len(values))
            postgres.sql(f"INSERT INTO {name} ({names}) VALUES ({marks})", values)
        return name

    return insert


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def s3_client(s3_endpoint: str, s3_env: None) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
