"""The server-side bundle check the model role runs before switching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.verify_bundle import main


def test_good_bundle_prints_its_version(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(bundle_dir)]) == 0
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert json.loads(capsys.readouterr().out) == {"version": manifest["version"]}


def test_corrupted_bundle_is_refused_with_the_reason(
    bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    (broken / "model.onnx").write_bytes(b"not a model")
    assert main([str(broken)]) == 1
    assert "bundle refused" in capsys.readouterr().err


def test_missing_argument_is_a_usage_error() -> None:
    assert main([]) == 2
