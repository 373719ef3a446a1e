from __future__ import annotations

import hashlib
import json
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.services.manifest import FeatureSpec, Manifest, RegressionOutput, compute_version
from ml import bundle, export
from ml.bundle import UNSTAMPED_REV, UNSTAMPED_TIME, build_manifest, write_bundle
from ml.params import load_section
from ml.paths import Paths
from ml.pipeline import run_all
from tests.unit.conftest import make_root

MODEL_FILENAME = "model.onnx"


def _manifest(path: Path) -> Manifest:
    return Manifest.model_validate_json((path / "manifest.json").read_text())


def _small_manifest(model: bytes, name: str = "m") -> Manifest:
    return build_manifest(
        name=name,
        fmt="onnx",
        model_file=MODEL_FILENAME,
        model=model,
        features=[FeatureSpec(name="x", dtype="float64", min=0.0, max=1.0)],
        output=RegressionOutput(),
        metrics={"r2": 0.5},
        golden=[{"input": {"x": 0.5}, "output": {"prediction": 1.0}}],  # type: ignore[list-item]
        reference=None,
        git_rev="abc",
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )


def test_manifest_hashes_match_files(bundle_dir: Path) -> None:
    manifest = _manifest(bundle_dir)
    assert manifest.files.keys() == {MODEL_FILENAME}
    for name, digest in manifest.files.items():
        assert hashlib.sha256((bundle_dir / name).read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in bundle_dir.iterdir()) == ["manifest.json", MODEL_FILENAME]


def test_manifest_records_every_required_field(bundle_dir: Path) -> None:
    raw = json.loads((bundle_dir / "manifest.json").read_text())
    for field in (
        "name",
        "version",
        "format",
        "files",
        "features",
        "output",
        "metrics",
        "golden",
        "git_rev",
        "created_at",
        "reference",
    ):
        assert field in raw, field
    assert raw["format"] == "onnx"
    assert set(raw["features"][0]) == {"name", "dtype", "min", "max"}
    assert set(raw["reference"]["features"]) == {f["name"] for f in raw["features"]}


def test_pipeline_twice_gives_the_same_version(pipeline: Paths, tmp_path: Path) -> None:
    again = make_root(tmp_path)
    second = run_all(again)
    first = pipeline.bundle_dir(second.name)
    assert _manifest(first).version == _manifest(second).version
    # Deterministic export: no clock, no git in the output, so dvc.lock stays unchanged.
    for name in (MODEL_FILENAME, "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert _manifest(first).git_rev == UNSTAMPED_REV
    assert _manifest(first).created_at == UNSTAMPED_TIME


def test_version_ignores_created_at_and_git_rev() -> None:
    manifest = _small_manifest(b"model")
    changed = _small_manifest(b"model").model_copy(
        update={"git_rev": "other", "created_at": datetime.now(timezone.utc)}
    )
    assert compute_version(changed.format, changed.files, changed.features, changed.output) == (
        manifest.version
    )


def test_version_changes_with_model_or_schema() -> None:
    manifest = _small_manifest(b"model")
    assert _small_manifest(b"model2").version != manifest.version
    wider = [FeatureSpec(name="x", dtype="float64", min=0.0, max=2.0)]
    assert compute_version("onnx", manifest.files, wider, manifest.output) != manifest.version


def test_write_bundle_replaces_old_bundle_and_leaves_no_temp_dir(tmp_path: Path) -> None:
    target = tmp_path / "models" / "m"
    write_bundle(target, {MODEL_FILENAME: b"old"}, _small_manifest(b"old"))
    (target / "stale.txt").write_text("from the old bundle")
    write_bundle(target, {MODEL_FILENAME: b"new"}, _small_manifest(b"new"))
    assert (target / MODEL_FILENAME).read_bytes() == b"new"
    assert not (target / "stale.txt").exists()
    assert [p.name for p in target.parent.iterdir()] == ["m"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_failed_write_keeps_old_bundle_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m"
    write_bundle(target, {MODEL_FILENAME: b"old"}, _small_manifest(b"old"))

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(bundle, "_write_synced", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_bundle(target, {MODEL_FILENAME: b"new"}, _small_manifest(b"new"))
    assert (target / MODEL_FILENAME).read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_write_bundle_refuses_files_that_do_not_match_the_manifest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not match its sha256"):
        write_bundle(tmp_path / "m", {MODEL_FILENAME: b"tampered"}, _small_manifest(b"model"))
    assert not (tmp_path / "m").exists()


def test_manifest_refuses_pickle_files() -> None:
    manifest = _small_manifest(b"model")
    data = manifest.model_dump(mode="json")
    data["files"]["model.pkl"] = "0" * 64
    with pytest.raises(ValueError, match="may not be listed"):
        Manifest.model_validate(data)


def test_export_reruns_replace_the_bundle_in_place(pipeline_copy: Paths) -> None:
    params = load_section(pipeline_copy.params_file, "export", export.ExportParams)
    before = _manifest(pipeline_copy.bundle_dir(params.model_name))
    target = export.run(params, pipeline_copy)
    assert _manifest(target).version == before.version
    assert sorted(p.name for p in pipeline_copy.models_dir.iterdir()) == [
        "candidate",
        params.model_name,
    ]
