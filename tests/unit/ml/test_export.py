from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from app.services.manifest import (
    ClassificationOutput,
    Manifest,
    NumericHistogram,
    RegressionOutput,
)
from app.services.model_store import load_bundle
from app.services.runtimes import RawOutput as OnnxOutputs
from ml import export
from ml.agreement import DisagreementError as AgreementError
from ml.agreement import check_agreement
from ml.export import ExportError, ExportParams, check_metrics
from ml.params import load_section
from ml.paths import PROJECT_ROOT, Paths
from ml.pipeline import run_all
from ml.reference import SklearnReference
from ml.stage import cli
from tests.unit.conftest import make_root


def _params(paths: Paths) -> ExportParams:
    return load_section(paths.params_file, "export", ExportParams)


def test_metrics_below_threshold_are_refused() -> None:
    with pytest.raises(ExportError, match=r"accuracy = 0\.8000 is below the minimum 0\.9"):
        check_metrics({"accuracy": 0.8, "f1_macro": 0.95}, {"accuracy": 0.9, "f1_macro": 0.9})


def test_metrics_at_threshold_pass() -> None:
    check_metrics({"accuracy": 0.9}, {"accuracy": 0.9})


def test_threshold_on_unknown_metric_is_refused() -> None:
    with pytest.raises(ExportError, match="names 'auc'"):
        check_metrics({"accuracy": 0.99}, {"auc": 0.9})


def test_export_refuses_weak_model_and_writes_no_bundle(pipeline_copy: Paths) -> None:
    params = _params(pipeline_copy)
    target = pipeline_copy.bundle_dir(params.model_name)
    shutil.rmtree(target)
    pipeline_copy.metrics_file.write_text(json.dumps({"accuracy": 0.5, "f1_macro": 0.5}))
    with pytest.raises(ExportError, match="model refused"):
        export.run(params, pipeline_copy)
    assert not target.exists()
    assert list(pipeline_copy.models_dir.glob(".*")) == []


def test_refusal_exits_with_the_message(
    pipeline_copy: Paths, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline_copy.metrics_file.write_text(json.dumps({"accuracy": 0.5, "f1_macro": 0.5}))
    with pytest.raises(SystemExit) as exit_info:
        cli(lambda: export.main(pipeline_copy))
    assert "model refused: accuracy = 0.5000 is below the minimum" in str(exit_info.value.code)


def _classification_reference(probabilities: list[list[float]]) -> SklearnReference:
    return SklearnReference(
        task="classification",
        features=["a"],
        classes=["no", "yes"],
        predictions=["yes" if p[1] > 0.5 else "no" for p in probabilities],
        probabilities=probabilities,
    )


def test_agreement_within_tolerance_passes() -> None:
    onnx = OnnxOutputs(np.array(["yes", "no"]), np.array([[0.2, 0.8], [0.7, 0.3]]))
    check_agreement(onnx, _classification_reference([[0.20001, 0.79999], [0.7, 0.3]]), 1e-4)


def test_probability_disagreement_is_refused() -> None:
    onnx = OnnxOutputs(np.array(["yes", "no"]), np.array([[0.2, 0.8], [0.7, 0.3]]))
    with pytest.raises(AgreementError, match=r"differ from scikit-learn's by up to 0\.01"):
        check_agreement(onnx, _classification_reference([[0.21, 0.79], [0.7, 0.3]]), 1e-4)


def test_class_disagreement_is_refused() -> None:
    onnx = OnnxOutputs(np.array(["no", "no"]), np.array([[0.2, 0.8], [0.7, 0.3]]))
    with pytest.raises(AgreementError, match="different classes for 1 of 2"):
        check_agreement(onnx, _classification_reference([[0.2, 0.8], [0.7, 0.3]]), 1e-4)


def test_regression_disagreement_is_relative() -> None:
    reference = SklearnReference(task="regression", features=["a"], predictions=[300.0, 0.5])
    check_agreement(OnnxOutputs(np.array([300.001, 0.50001]), None), reference, 1e-4)
    with pytest.raises(AgreementError, match="predictions"):
        check_agreement(OnnxOutputs(np.array([300.1, 0.5]), None), reference, 1e-4)


def test_bundle_from_repository_params(bundle_dir: Path) -> None:
    manifest = Manifest.model_validate_json((bundle_dir / "manifest.json").read_text())
    assert manifest.name == "wine-classifier" == bundle_dir.name
    assert isinstance(manifest.output, ClassificationOutput)
    assert manifest.output.classes == ["class_0", "class_1", "class_2"]
    assert len(manifest.features) == 13
    assert all(
        f.min is not None and f.max is not None and f.min <= f.max for f in manifest.features
    )
    assert manifest.metrics["accuracy"] >= 0.9
    assert len(manifest.golden) == 5
    assert manifest.git_rev == "unreleased"  # stamped at release/deploy time (ml.stamp)


def test_regression_example_with_a_categorical_feature_exports_a_servable_bundle(
    tmp_path: Path,
) -> None:
    example = yaml.safe_load(
        (PROJECT_ROOT / "examples/diabetes-regressor.params.yaml").read_text()
    )
    paths = make_root(tmp_path, **example)
    bundle = run_all(paths)
    model = load_bundle(bundle)
    manifest = model.manifest
    assert manifest.name == "diabetes-regressor" and manifest.format == "onnx"
    assert isinstance(manifest.output, RegressionOutput)
    sex = next(f for f in manifest.features if f.name == "sex")
    assert (sex.dtype, sex.allowed, sex.min, sex.max) == ("category", ["1", "2"], None, None)
    assert manifest.golden[0].input["sex"] in ("1", "2")
    assert manifest.reference is not None
    assert manifest.reference.features["sex"].model_dump() == {
        "values": ["1", "2"],
        "counts": [175, 156],
    }
    predictions = manifest.reference.predictions
    assert isinstance(predictions, NumericHistogram) and sum(predictions.counts) == 331
    result = model.predict([pair.input for pair in manifest.golden])
    assert result.probabilities is None
    assert all(isinstance(value, float) for value in result.predictions)
    # The category changes the answer: it reaches the model, it is not dropped.
    record = dict(manifest.golden[0].input)
    other = {**record, "sex": "2" if record["sex"] == "1" else "1"}
    first, second = model.predict([record, other]).predictions
    assert first != second


def test_export_refuses_onnx_that_disagrees_with_sklearn(pipeline_copy: Paths) -> None:
    params = _params(pipeline_copy)
    before = (pipeline_copy.bundle_dir(params.model_name) / "manifest.json").read_bytes()
    reference = SklearnReference.read(pipeline_copy.candidate_reference)
    assert reference.probabilities is not None
    reference.probabilities[0] = [p + 0.01 for p in reference.probabilities[0]]
    reference.write(pipeline_copy.candidate_reference)
    with pytest.raises(ExportError, match="the conversion is not faithful"):
        export.run(params, pipeline_copy)
    assert (pipeline_copy.bundle_dir(params.model_name) / "manifest.json").read_bytes() == before
