"""Stage ``train``: fit a scikit-learn pipeline and store it in a format that runs no code on load.

Format (``train.format``): ``auto`` converts to ONNX and keeps it when the ONNX model gives
scikit-learn's answers on the test split within ``train.onnx.tolerance``; otherwise (the
converter fails or disagrees) the pipeline is stored with skops. ``onnx`` refuses instead of
falling back; ``skops`` skips the conversion. The fitted estimator is never pickled.

Writes ``models/candidate/model.{onnx,skops}`` and ``sklearn_reference.json`` (scikit-learn's
outputs on the test split, the chosen format and why).
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import skops.io as sio
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.services.manifest import FeatureSpec, ModelFormat
from app.services.runtimes import OnnxRuntime
from ml.agreement import DisagreementError, check_agreement
from ml.candidate import feature_specs
from ml.data import Task, categorical_columns, read_split, records, task_of
from ml.onnx_model import ConversionError, convert
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
    "hist_gradient_boosting": EstimatorSpec(
        HistGradientBoostingClassifier, "classification", scale=False
    ),
    "ridge": EstimatorSpec(Ridge, "regression", scale=True),
    "random_forest_regressor": EstimatorSpec(RandomForestRegressor, "regression", scale=False),
    "hist_gradient_boosting_regressor": EstimatorSpec(
        HistGradientBoostingRegressor, "regression", scale=False
    ),
}
EstimatorName = Literal[
    "logistic_regression",
    "random_forest",
    "hist_gradient_boosting",
    "ridge",
    "random_forest_regressor",
    "hist_gradient_boosting_regressor",
]


class OnnxParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_opset: int = Field(ge=9, le=21)
    target_opset_ml: int = Field(ge=1, le=5)
    # ONNX is kept only when it agrees with scikit-learn within this on the test split.
    tolerance: float = Field(default=1e-4, gt=0, le=0.01)


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    estimator: EstimatorName
    random_state: int
    hyperparams: dict[str, int | float | str | bool | None] = Field(default_factory=dict)
    format: Literal["auto", "onnx", "skops"] = "auto"
    onnx: OnnxParams


class TrainError(StageError):
    """The estimator cannot be built for these parameters or this data."""


def build_pipeline(
    params: TrainParams, task: Task, categorical: list[int] | None = None, n_features: int = 0
) -> Pipeline:
    """The estimator behind its preprocessing. ``categorical``: column positions (of
    ``n_features``) to one-hot encode; positions, not names, so the server needs no pandas to
    run a skops model."""
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
    if categorical:
        prep = _column_transformer(spec.scale, categorical, n_features)
        return Pipeline([("prep", prep), ("model", estimator)])
    steps: list[tuple[str, BaseEstimator]] = [("scale", StandardScaler())] if spec.scale else []
    return Pipeline([*steps, ("model", estimator)])


def _column_transformer(scale: bool, categorical: list[int], n_features: int) -> ColumnTransformer:
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    numeric = [i for i in range(n_features) if i not in categorical]
    return ColumnTransformer(
        [
            ("numeric", StandardScaler() if scale else "passthrough", numeric),
            ("categorical", encoder, categorical),
        ]
    )


def model_matrix(features: pd.DataFrame) -> NDArray[Any]:
    """What scikit-learn is fitted on: float64, or object columns when some are categorical."""
    if any(features[n].dtype == object for n in features.columns):
        matrix: NDArray[Any] = features.to_numpy(dtype=object)
    else:
        matrix = features.to_numpy(dtype=np.float64)
    return matrix


def sklearn_reference(
    pipeline: Pipeline, x_test: pd.DataFrame, task: Task, categorical: list[str]
) -> SklearnReference:
    inputs = model_matrix(x_test)
    if task == "classification":
        return SklearnReference(
            task=task,
            features=list(x_test.columns),
            categorical=categorical,
            classes=[str(c) for c in pipeline.classes_],
            predictions=[str(p) for p in pipeline.predict(inputs)],
            probabilities=pipeline.predict_proba(inputs).tolist(),
        )
    return SklearnReference(
        task=task,
        features=list(x_test.columns),
        categorical=categorical,
        predictions=[float(p) for p in pipeline.predict(inputs)],
    )


def skops_bytes(pipeline: Pipeline) -> bytes:
    """The pipeline in skops format, byte-identical for the same model.

    skops names objects by ``id()`` (``__id__`` in schema.json, ``<id>.npy`` entries) and
    stamps zip entries with the current time; both are replaced by stable values (ids numbered
    in order of appearance, a fixed date), which keeps the references between them intact.
    """
    ids: dict[int, int] = {}
    with zipfile.ZipFile(io.BytesIO(sio.dumps(pipeline))) as source:
        schema = _renumber(json.loads(source.read("schema.json")), ids)
        entries = {
            _renamed(entry.filename, ids): source.read(entry)
            for entry in source.infolist()
            if entry.filename != "schema.json"
        }
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, data in [("schema.json", json.dumps(schema).encode()), *sorted(entries.items())]:
            target.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return packed.getvalue()


def _renamed(filename: str, ids: dict[int, int]) -> str:
    stem, dot, suffix = filename.partition(".")
    return (
        f"{ids.setdefault(int(stem), len(ids) + 1)}{dot}{suffix}" if stem.isdigit() else filename
    )


def _renumber(node: Any, ids: dict[int, int]) -> Any:
    if isinstance(node, list):
        return [_renumber(item, ids) for item in node]
    if not isinstance(node, dict):
        return node
    renumbered: dict[str, Any] = {}
    for key, value in node.items():
        if key == "__id__" and isinstance(value, int):
            renumbered[key] = ids.setdefault(value, len(ids) + 1)
        elif key == "file" and isinstance(value, str):
            renumbered[key] = _renamed(value, ids)
        else:
            renumbered[key] = _renumber(value, ids)
    return renumbered


def choose_format(
    params: TrainParams,
    pipeline: Pipeline,
    specs: list[FeatureSpec],
    x_test: pd.DataFrame,
    reference: SklearnReference,
) -> tuple[ModelFormat, bytes, str | None]:
    """(format, model bytes, why not ONNX)."""
    if params.format == "skops":
        return "skops", skops_bytes(pipeline), "train.format is skops"
    onnx = params.onnx
    try:
        model = convert(pipeline, specs, onnx.target_opset, onnx.target_opset_ml)
        diff = check_agreement(
            OnnxRuntime(model, specs).run(records(x_test)), reference, onnx.tolerance
        )
    except (ConversionError, DisagreementError) as exc:
        if params.format == "onnx":
            raise TrainError(f"{exc}. Set train.format to auto to store it with skops") from exc
        log.warning("storing the model with skops: %s", exc)
        return "skops", skops_bytes(pipeline), str(exc)
    log.info("ONNX agrees with scikit-learn: max |diff| %.3g <= %g", diff, onnx.tolerance)
    return "onnx", model, None


def run(params: TrainParams, paths: Paths) -> ModelFormat:
    x_train, y_train = read_split(paths.train_csv)
    x_test, _ = read_split(paths.test_csv)
    categorical = categorical_columns(paths.prepared_dir)
    task = task_of(y_train)
    positions = [list(x_train.columns).index(name) for name in categorical]
    pipeline = build_pipeline(params, task, positions, x_train.shape[1])
    pipeline.fit(model_matrix(x_train), y_train.to_numpy())

    specs = feature_specs(x_train, categorical)
    reference = sklearn_reference(pipeline, x_test, task, categorical)
    fmt, model, reason = choose_format(params, pipeline, specs, x_test, reference)
    reference = reference.model_copy(update={"format": fmt, "format_reason": reason})

    paths.candidate_dir.mkdir(parents=True, exist_ok=True)
    for stale in paths.candidate_dir.glob("model.*"):
        stale.unlink()
    paths.candidate_model(fmt).write_bytes(model)
    reference.write(paths.candidate_reference)
    log.info("trained %s on %d rows, stored as %s", params.estimator, len(x_train), fmt)
    return fmt


def main(paths: Paths | None = None) -> None:
    paths = paths or Paths()
    run(load_section(paths.params_file, "train", TrainParams), paths)


if __name__ == "__main__":
    cli(main)
