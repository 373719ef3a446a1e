"""Contract tests: every way a bundle can be wrong raises a clear, specific error."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.services.manifest import Manifest, compute_version
from app.services.model_store import (
    BundleNotFoundError,
    GoldenMismatchError,
    IntegrityError,
    ManifestError,
    ModelLoadError,
    ModelStore,
    UnsafeFileError,
    load_bundle,
)


def _read(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle / "manifest.json").read_text())
    return data


def _rewrite(bundle: Path, data: dict[str, Any], *, fix_version: bool = True) -> None:
    """Write a manifest; with ``fix_version`` it is self-consistent (as a careful forger would)."""
    if fix_version:
        manifest = Manifest.model_validate(data)
        data["version"] = compute_version(
            manifest.format, manifest.files, manifest.features, manifest.output
        )
    (bundle / "manifest.json").write_text(json.dumps(data))


def test_valid_bundle_loads_and_predicts_golden(bundle_copy: Path) -> None:
    model = load_bundle(bundle_copy)
    golden = model.manifest.golden
    result = model.predict([pair.input for pair in golden])
    assert result.predictions == [pair.output.prediction for pair in golden]
    assert result.probabilities is not None
    assert all(math.isclose(sum(p.values()), 1.0, abs_tol=1e-5) for p in result.probabilities)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleNotFoundError, match=r"no model bundle at .*dvc repro"):
        load_bundle(tmp_path / "absent")


def test_corrupt_model_file(bundle_copy: Path) -> None:
    model = bundle_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.onnx has sha256 .* corrupt or was changed"):
        load_bundle(bundle_copy)


def test_wrong_hash_in_manifest(bundle_copy: Path) -> None:
    data = _read(bundle_copy)
    data["files"]["model.onnx"] = "0" * 64
    _rewrite(bundle_copy, data)
    with pytest.raises(IntegrityError, match="the manifest says 000000000000"):
        load_bundle(bundle_copy)


def test_missing_model_file(bundle_copy: Path) -> None:
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(IntegrityError, match=r"model\.onnx is missing"):
        load_bundle(bundle_copy)


def test_missing_manifest(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(ManifestError, match=r"manifest\.json is missing"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib", "Extra.PICKLE"])
def test_pickle_file_present(bundle_copy: Path, name: str) -> None:
    (bundle_copy / name).write_bytes(b"\x80\x04N.")
    with pytest.raises(UnsafeFileError) as error:
        load_bundle(bundle_copy)
    message = str(error.value)
    assert name in message
    assert "executes arbitrary code" in message
    assert "dvc repro" in message


def test_unlisted_file(bundle_copy: Path) -> None:
    (bundle_copy / "notes.txt").write_text("hello")
    with pytest.raises(IntegrityError, match=r"does not list: \['notes\.txt'\]"):
        load_bundle(bundle_copy)


def test_symlinked_model_file(bundle_copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.onnx"
    (bundle_copy / "model.onnx").rename(elsewhere)
    (bundle_copy / "model.onnx").symlink_to(elsewhere)
    with pytest.raises(IntegrityError, match="not a regular file"):
        load_bundle(bundle_copy)


def test_unparsable_model_with_matching_hash(bundle_copy: Path) -> None:
    (bundle_copy / "model.onnx").write_bytes(b"not a protobuf")
    data = _read(bundle_copy)
    data["files"]["model.onnx"] = hashlib.sha256(b"not a protobuf").hexdigest()
    _rewrite(bundle_copy, data)
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load the model"):
        load_bundle(bundle_copy)


def test_manifest_edited_without_new_version(bundle_copy: Path) -> None:
    data = _read(bundle_copy)
    data["features"][0]["max"] = 1e9
    _rewrite(bundle_copy, data, fix_version=False)
    with pytest.raises(ManifestError, match="does not match its content"):
        load_bundle(bundle_copy)


def test_invalid_manifest(bundle_copy: Path) -> None:
    data = _read(bundle_copy)
    data["format"] = "pickle"
    _rewrite(bundle_copy, data, fix_version=False)
    with pytest.raises(ManifestError, match="not a valid manifest"):
        load_bundle(bundle_copy)


def test_golden_class_mismatch(bundle_copy: Path) -> None:
    data = _read(bundle_copy)
    expected = data["golden"][0]["output"]["prediction"]
    data["golden"][0]["output"]["prediction"] = "class_2" if expected != "class_2" else "class_0"
    _rewrite(bundle_copy, data)
    with pytest.raises(GoldenMismatchError, match="golden pair 0: predicted"):
        load_bundle(bundle_copy)


def test_golden_probability_mismatch(bundle_copy: Path) -> None:
    data = _read(bundle_copy)
    probabilities = data["golden"][1]["output"]["probabilities"]
    probabilities["class_0"] += 0.001
    _rewrite(bundle_copy, data)
    with pytest.raises(GoldenMismatchError, match="golden pair 1: probability of 'class_0'"):
        load_bundle(bundle_copy)


def test_golden_input_missing_a_feature(bundle_copy: Path) -> None:
    data = _read(bundle_copy)
    del data["golden"][0]["input"]["alcohol"]
    _rewrite(bundle_copy, data)
    with pytest.raises(GoldenMismatchError, match="cannot be predicted"):
        load_bundle(bundle_copy)


def test_store_records_the_error_and_keeps_serving_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "absent")
    assert store.load() is None
    assert store.model is None
    assert store.error is not None and "no model bundle" in store.error


def test_store_keeps_previous_model_when_reload_fails(bundle_copy: Path) -> None:
    store = ModelStore(bundle_copy)
    loaded = store.load()
    assert loaded is not None
    (bundle_copy / "model.pkl").write_bytes(b"x")
    assert store.load() is None
    assert store.model is loaded
    assert store.error is not None and "pickle" in store.error


def test_validate_records_reports_each_bad_field(bundle_copy: Path) -> None:
    model = load_bundle(bundle_copy)
    good = dict(model.manifest.golden[0].input)
    bad = {**good, "hue": "1.0", "extra": 1.0}
    del bad["ash"]
    assert model.validate_records([good]) == [good]
    with pytest.raises(ValidationError) as error:
        model.validate_records([good, bad])
    located = {(e["loc"], e["type"]) for e in error.value.errors()}
    assert located == {
        ((1, "hue"), "float_type"),
        ((1, "extra"), "extra_forbidden"),
        ((1, "ash"), "missing"),
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_store_retries_when_the_bundle_link_is_repointed(
    bundle_copy: Path, tmp_path: Path
) -> None:
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "absent")
    clock = FakeClock()
    store = ModelStore(link, retry_seconds=60, clock=clock)
    assert store.load() is None
    assert store.retry_if_due() is None  # same target, retry time not reached: no new attempt
    assert store.error is not None and "no model bundle" in store.error
    link.unlink()
    link.symlink_to(bundle_copy)
    model = store.retry_if_due()
    assert model is not None
    assert store.model is model and store.error is None


def test_store_retries_the_same_target_after_the_retry_time(bundle_copy: Path) -> None:
    (bundle_copy / "model.onnx").rename(bundle_copy.parent / "model.onnx.aside")
    clock = FakeClock()
    store = ModelStore(bundle_copy, retry_seconds=5, clock=clock)
    assert store.load() is None
    (bundle_copy.parent / "model.onnx.aside").rename(bundle_copy / "model.onnx")
    clock.now += 4.9
    assert store.retry_if_due() is None
    clock.now += 0.1
    assert store.retry_if_due() is not None


def test_store_with_a_model_never_reloads_on_its_own(bundle_copy: Path) -> None:
    clock = FakeClock()
    store = ModelStore(bundle_copy, retry_seconds=0, clock=clock)
    model = store.load()
    assert model is not None
    (bundle_copy / "model.onnx").write_bytes(b"broken")
    clock.now += 3600
    assert store.retry_if_due() is model
