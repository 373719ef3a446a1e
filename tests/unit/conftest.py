"""Fixtures for unit tests: one real pipeline run into a tmp dir, shared by the session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ml.paths import PROJECT_ROOT, Paths
from ml.pipeline import run_all


def make_root(root: Path, **sections: dict[str, object]) -> Paths:
    """A project root in ``root`` with the repository's params.yaml, sections overridden."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params.update(sections)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return Paths(root)


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """The repository's pipeline, run once with its own params.yaml."""
    paths = make_root(tmp_path_factory.mktemp("pipeline"))
    run_all(paths)
    return paths


@pytest.fixture(scope="session")
def bundle_dir(pipeline: Paths) -> Path:
    return next(p for p in pipeline.models_dir.iterdir() if (p / "manifest.json").exists())


@pytest.fixture
def bundle_copy(bundle_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the bundle that a test may tamper with."""
    return Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))


@pytest.fixture
def pipeline_copy(pipeline: Paths, tmp_path: Path) -> Paths:
    """A private copy of the whole pipeline root (data, models, reports)."""
    return Paths(Path(shutil.copytree(pipeline.root, tmp_path / "root")))
