"""Fixtures for API tests: a bundle exported once per session, and TestClients around it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from ml.paths import PROJECT_ROOT, Paths
from ml.pipeline import run_all


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    return run_all(Paths(root))


@pytest.fixture(scope="session")
def manifest(bundle_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle_dir / "manifest.json").read_text())
    return data


@pytest.fixture
def sample_record(manifest: dict[str, Any]) -> dict[str, float]:
    record: dict[str, float] = dict(manifest["golden"][0]["input"])
    return record


def client_for(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def client(bundle_dir: Path) -> Iterator[TestClient]:
    yield from client_for(Settings(model_dir=bundle_dir, max_records=5))


@pytest.fixture(scope="module")
def client_without_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    missing = tmp_path_factory.mktemp("empty") / "no-such-bundle"
    yield from client_for(Settings(model_dir=missing))
