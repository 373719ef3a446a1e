"""Run all stages in order without DVC (tests, quick experiments). DVC remains the real runner.

    python -m ml.pipeline --params examples/diabetes-regressor.params.yaml --root /tmp/diabetes

copies the parameter file to ``ROOT/params.yaml`` and writes data, candidate, metrics and the
bundle under ``ROOT``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ml import evaluate, export, prepare, train
from ml.paths import Paths
from ml.stage import cli


def run_all(paths: Paths) -> Path:
    """Run every stage with ``paths.params_file``; return the bundle directory."""
    prepare.main(paths)
    train.main(paths)
    evaluate.main(paths)
    return export.main(paths)


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m ml.pipeline", description=__doc__)
    parser.add_argument("--params", type=Path, required=True, help="a params.yaml profile")
    parser.add_argument("--root", type=Path, required=True, help="directory to write into")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.params, args.root / "params.yaml")
    bundle = run_all(Paths(args.root.resolve()))
    sys.stdout.write(f"{bundle}\n")
    return bundle


if __name__ == "__main__":
    cli(main)
