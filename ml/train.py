"""Stage ``train``: fit a scikit-learn pipeline and convert it to ONNX.

The fitted estimator never leaves this process as a pickle: the stage writes the ONNX model
and scikit-learn's own outputs on the test split, which ``export`` checks the ONNX model against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ml.data import Task, read_split, task_of
from ml.onnx_model import convert
from ml.params import load_section
from ml.paths import Paths
from ml.reference import SklearnReference
from ml.stage import StageError, cli

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EstimatorSpec:
    cls: type[BaseEstimator]
    task: Task
    # Trees need no scaling, and a float64 scaler in front of them makes ONNX (float32) and
    # scikit-learn disagree near split thresholds.
    scale: bool


ESTIMATORS: dict[str, EstimatorSpec] = {
    "logistic_regression": EstimatorSpec(LogisticRegression, "classification", scale=True),
    "random_forest": EstimatorSpec(RandomForestClassifier, "classification", scale=False),
    "ridge": EstimatorSpec(Ridge, "regression", scale=True),
    "random_forest_regressor": EstimatorSpec(RandomForestRegressor, "regression", scale=False),
}
EstimatorName = Literal["logistic_regression", "random_forest", "ridge", "random_forest_regressor"]


class OnnxParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_opset: int = Field(ge=9, le=21)
    target_opset_ml: int = Field(ge=1, le=5)


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    estimator: EstimatorName
    random_state: int
    hyperparams: dict[str, int | float | str | bool | None] = Field(default_factory=dict)
    onnx: OnnxParams


class TrainError(StageError):
    """The estimator cannot be built for these parameters or this data."""


def build_pipeline(params: TrainParams, task: Task) -> Pipeline:
    spec = ESTIMATORS[params.estimator]
    if spec.task != task:
        raise TrainError(
            f"estimator '{params.estimator}' does {spec.task} but the prepared data is a "
            f"{task} problem; pick a {task} estimator in params.yaml train.estimator"
        )
    try:
        estimator = spec.cls(**params.hyperparams)
    except TypeError as exc:
        raise TrainError(f"bad train.hyperparams for '{params.estimator}': {exc}") from exc
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=params.random_state)
    steps: list[tuple[str, BaseEstimator]] = [("scale", StandardScaler())] if spec.scale else []
    return Pipeline([*steps, ("model", estimator)])


def run(params: TrainParams, paths: Paths) -> None:
    x_train, y_train = read_split(paths.train_csv)
    x_test, _ = read_split(paths.test_csv)
    task = task_of(y_train)
    pipeline = build_pipeline(params, task)
    pipeline.fit(x_train.to_numpy(), y_train.to_numpy())

    model = convert(
        pipeline, x_train.shape[1], params.onnx.target_opset, params.onnx.target_opset_ml
    )
    test_inputs = x_test.to_numpy()
    if task == "classification":
        reference = SklearnReference(
            task=task,
            features=list(x_train.columns),
            classes=[str(c) for c in pipeline.classes_],
            predictions=[str(p) for p in pipeline.predict(test_inputs)],
            probabilities=pipeline.predict_proba(test_inputs).tolist(),
        )
    else:
        reference = SklearnReference(
            task=task,
            features=list(x_train.columns),
            predictions=[float(p) for p in pipeline.predict(test_inputs)],
        )

    paths.candidate_dir.mkdir(parents=True, exist_ok=True)
    paths.candidate_model.write_bytes(model)
    reference.write(paths.candidate_reference)
    log.info("trained %s on %d rows", params.estimator, len(x_train))


def main(paths: Paths | None = None) -> None:
    paths = paths or Paths()
    run(load_section(paths.params_file, "train", TrainParams), paths)


if __name__ == "__main__":
    cli(main)
