"""Run all stages in order without DVC (tests, quick experiments). DVC remains the real runner."""

from __future__ import annotations

from pathlib import Path

from ml import evaluate, export, prepare, train
from ml.paths import Paths


def run_all(paths: Paths) -> Path:
    """Run every stage with ``paths.params_file``; return the bundle directory."""
    prepare.main(paths)
    train.main(paths)
    evaluate.main(paths)
    return export.main(paths)
