"""Format choice at train time (ONNX, else skops), skops bundles on the server side, and
categorical features reaching the ONNX graph."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
import yaml
from pydantic import ValidationError
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from app.services.manifest import FeatureSpec, Manifest, compute_version, sha256_hex
from app.services.model_store import ModelLoadError, load_bundle
from ml import train
from ml.paths import PROJECT_ROOT, Paths
from ml.pipeline import run_all
from ml.reference import SklearnReference
from ml.stage import StageError
from tests.unit.conftest import make_root

HGB = {
    "estimator": "hist_gradient_boosting",
    "random_state": 0,
    "hyperparams": {"max_iter": 30},
    "onnx": {"target_opset": 18, "target_opset_ml": 3},
}


def _without_gap_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """skl2onnx as shipped: HistGradientBoosting fails to convert."""
    original = train.convert
    monkeypatch.setattr(
        train, "convert", lambda *args, **kwargs: original(*args, **kwargs, fix_gaps=False)
    )


@pytest.fixture(scope="module")
def skops_root(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _without_gap_fix(monkeypatch)
        paths = make_root(tmp_path_factory.mktemp("skops"), train={**HGB, "format": "auto"})
        run_all(paths)
    return paths


def _bundle(paths: Paths) -> Path:
    return paths.bundle_dir("wine-classifier")


def test_hist_gradient_boosting_converts_with_the_gap_fix(tmp_path: Path) -> None:
    paths = make_root(tmp_path, train=HGB)
    model = load_bundle(run_all(paths))
    assert model.manifest.format == "onnx" and model.manifest.model_file == "model.onnx"


def test_auto_stores_an_unconvertible_estimator_with_skops(skops_root: Paths) -> None:
    reference = SklearnReference.read(skops_root.candidate_reference)
    assert reference.format == "skops"
    assert reference.format_reason and "Expected an int, got a boolean" in reference.format_reason
    bundle = _bundle(skops_root)
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "model.skops"]
    model = load_bundle(bundle)  # hashes, trusted types, golden pairs
    assert (model.manifest.format, model.manifest.model_file) == ("skops", "model.skops")
    assert model.manifest.metrics["accuracy"] >= 0.9
    result = model.predict([pair.input for pair in model.manifest.golden])
    assert result.predictions == [pair.output.prediction for pair in model.manifest.golden]


def test_skops_export_is_byte_identical_on_a_rerun(
    skops_root: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_gap_fix(monkeypatch)
    again = make_root(tmp_path, train={**HGB, "format": "auto"})
    second = run_all(again)
    for name in ("model.skops", "manifest.json"):
        assert (second / name).read_bytes() == (_bundle(skops_root) / name).read_bytes(), name


def test_format_onnx_refuses_instead_of_falling_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_gap_fix(monkeypatch)
    paths = make_root(tmp_path, train={**HGB, "format": "onnx"})
    with pytest.raises(StageError, match=r"Expected an int.*Set train\.format to auto"):
        run_all(paths)


def _replace_model(bundle: Path, data: bytes) -> None:
    raw: dict[str, Any] = json.loads((bundle / "manifest.json").read_text())
    (bundle / raw["model_file"]).write_bytes(data)
    raw["files"][raw["model_file"]] = sha256_hex(data)
    manifest = Manifest.model_validate(raw)
    raw["version"] = compute_version(
        manifest.format, manifest.files, manifest.features, manifest.output
    )
    (bundle / "manifest.json").write_text(json.dumps(raw))


def test_skops_file_with_an_untrusted_type_is_refused(skops_root: Paths, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(_bundle(skops_root), tmp_path / "bundle"))
    evil = Pipeline([("f", FunctionTransformer(print)), ("model", Ridge())])
    _replace_model(bundle, sio.dumps(evil))
    with pytest.raises(ModelLoadError, match=r"does not trust: \['builtins.print'\]"):
        load_bundle(bundle)


def test_trusted_types_live_in_code_not_in_the_artifact() -> None:
    from app.services import runtimes

    assert "sklearn.tree._tree.Tree" in runtimes.TRUSTED_SKOPS_TYPES
    assert "trusted" not in Manifest.model_fields


@pytest.fixture(scope="module")
def diabetes_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    example = yaml.safe_load(
        (PROJECT_ROOT / "examples/diabetes-regressor.params.yaml").read_text()
    )
    return run_all(make_root(tmp_path_factory.mktemp("diabetes"), **example))


def test_onnx_inputs_that_do_not_fit_the_manifest_are_refused(
    diabetes_bundle: Path, tmp_path: Path
) -> None:
    bundle = Path(shutil.copytree(diabetes_bundle, tmp_path / "bundle"))
    raw: dict[str, Any] = json.loads((bundle / "manifest.json").read_text())
    sex = next(f for f in raw["features"] if f["name"] == "sex")
    sex.update(dtype="float64", min=1.0, max=2.0)
    del sex["allowed"]
    _replace_model(bundle, (bundle / "model.onnx").read_bytes())
    raw_fixed = json.loads((bundle / "manifest.json").read_text())
    raw_fixed["features"] = raw["features"]
    manifest = Manifest.model_validate(raw_fixed)
    raw_fixed["version"] = compute_version(
        manifest.format, manifest.files, manifest.features, manifest.output
    )
    (bundle / "manifest.json").write_text(json.dumps(raw_fixed))
    with pytest.raises(ModelLoadError, match="do not fit the manifest's features"):
        load_bundle(bundle)


def test_skops_regression_with_a_categorical_feature(tmp_path: Path) -> None:
    example = yaml.safe_load(
        (PROJECT_ROOT / "examples/diabetes-regressor.params.yaml").read_text()
    )
    example["train"] = {**example["train"], "format": "skops"}
    model = load_bundle(run_all(make_root(tmp_path, **example)))
    assert model.manifest.format == "skops"
    record = dict(model.manifest.golden[0].input)
    flipped = {**record, "sex": "2" if record["sex"] == "1" else "1"}
    first, second = model.predict([record, flipped]).predictions
    assert first != second


def test_feature_spec_rules() -> None:
    with pytest.raises(ValidationError, match="needs 'allowed' values"):
        FeatureSpec(name="c", dtype="category")
    with pytest.raises(ValidationError, match="may not list 'allowed'"):
        FeatureSpec(name="x", dtype="float64", allowed=["a"])
    assert FeatureSpec(name="old").dtype is None  # manifests from before contract 5 still load


def test_version_hash_of_numeric_features_is_unchanged_by_the_new_fields() -> None:
    old_style = {"name": "x", "dtype": "float64", "min": 0.0, "max": 1.0}
    spec = FeatureSpec.model_validate(old_style)
    assert spec.model_dump(mode="json", exclude_none=True) == old_style
