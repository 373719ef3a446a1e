from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_wine

from app.services.manifest import FeatureSpec
from app.services.runtimes import OnnxRuntime, RawOutput
from ml.candidate import read_candidate
from ml.data import read_split, records
from ml.onnx_model import ConversionError, convert
from ml.paths import Paths
from ml.reference import SklearnReference
from ml.train import EstimatorName, OnnxParams, TrainError, TrainParams, build_pipeline

ONNX = OnnxParams(target_opset=18, target_opset_ml=3)


def test_estimator_for_the_wrong_task_is_refused() -> None:
    params = TrainParams(estimator="ridge", random_state=0, onnx=ONNX)
    with pytest.raises(TrainError, match="pick a classification estimator"):
        build_pipeline(params, "classification")


def test_unknown_hyperparameter_is_refused() -> None:
    params = TrainParams(
        estimator="logistic_regression", random_state=0, hyperparams={"depth": 3}, onnx=ONNX
    )
    with pytest.raises(TrainError, match=r"bad train\.hyperparams"):
        build_pipeline(params, "classification")


def test_random_state_is_fixed_from_params() -> None:
    params = TrainParams(estimator="random_forest", random_state=7, onnx=ONNX)
    assert build_pipeline(params, "classification").get_params()["model__random_state"] == 7


def test_trees_are_not_scaled_linear_models_are() -> None:
    forest = build_pipeline(
        TrainParams(estimator="random_forest", random_state=0, onnx=ONNX), "classification"
    )
    linear = build_pipeline(
        TrainParams(estimator="ridge", random_state=0, onnx=ONNX), "regression"
    )
    assert [name for name, _ in forest.steps] == ["model"]
    assert [name for name, _ in linear.steps] == ["scale", "model"]


def _specs(n: int) -> list[FeatureSpec]:
    return [FeatureSpec(name=f"x{i}", dtype="float64", min=0.0, max=1.0) for i in range(n)]


def _run_onnx(model: bytes, data: np.ndarray) -> RawOutput:
    specs = _specs(data.shape[1])
    rows = [{f"x{i}": float(v) for i, v in enumerate(row)} for row in data]
    return OnnxRuntime(model, specs).run(rows)


@pytest.mark.parametrize(
    "estimator", ["logistic_regression", "random_forest", "hist_gradient_boosting"]
)
def test_onnx_classifier_agrees_with_sklearn(estimator: EstimatorName) -> None:
    data = load_wine()
    params = TrainParams(estimator=estimator, random_state=0, onnx=ONNX)
    pipeline = build_pipeline(params, "classification").fit(data.data, data.target)
    outputs = _run_onnx(convert(pipeline, _specs(data.data.shape[1]), 18, 3), data.data)
    assert outputs.probabilities is not None
    np.testing.assert_allclose(outputs.probabilities, pipeline.predict_proba(data.data), atol=1e-5)
    np.testing.assert_array_equal(outputs.predictions, pipeline.predict(data.data).astype(str))


@pytest.mark.parametrize(
    "estimator", ["ridge", "random_forest_regressor", "hist_gradient_boosting_regressor"]
)
def test_onnx_regressor_agrees_with_sklearn(estimator: EstimatorName) -> None:
    data = load_diabetes()
    params = TrainParams(estimator=estimator, random_state=0, onnx=ONNX)
    pipeline = build_pipeline(params, "regression").fit(data.data, data.target)
    outputs = _run_onnx(convert(pipeline, _specs(data.data.shape[1]), 18, 3), data.data)
    assert outputs.probabilities is None
    np.testing.assert_allclose(outputs.predictions, pipeline.predict(data.data), rtol=1e-5)


def test_hist_gradient_boosting_needs_the_converter_gap_fix() -> None:
    """skl2onnx 1.20 passes a boolean where onnx wants an int (scikit-learn 1.7.2 here too)."""
    data = load_wine()
    params = TrainParams(estimator="hist_gradient_boosting", random_state=0, onnx=ONNX)
    pipeline = build_pipeline(params, "classification").fit(data.data, data.target)
    with pytest.raises(ConversionError, match="Expected an int, got a boolean"):
        convert(pipeline, _specs(data.data.shape[1]), 18, 3, fix_gaps=False)
    assert convert(pipeline, _specs(data.data.shape[1]), 18, 3)  # fixed: see the test above


def test_train_writes_onnx_and_sklearn_reference(pipeline: Paths) -> None:
    reference = SklearnReference.read(pipeline.candidate_reference)
    x_test, _ = read_split(pipeline.test_csv)
    assert reference.task == "classification"
    assert reference.format == "onnx" and reference.format_reason is None
    assert reference.classes == ["class_0", "class_1", "class_2"]
    assert reference.features == list(x_test.columns)
    outputs = read_candidate(pipeline).runtime().run(records(x_test))
    assert outputs.predictions.tolist() == reference.predictions
    assert sorted(p.name for p in pipeline.candidate_dir.iterdir()) == [
        "model.onnx",
        "sklearn_reference.json",
    ]
