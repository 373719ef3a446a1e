"""Run a bundle's model: ONNX with onnxruntime, or a fitted scikit-learn pipeline stored by skops.

Both runtimes take records keyed by feature name and return the same ``RawOutput``, so the
exporter (``ml/``) checks a model through exactly the code the server predicts with.

ONNX inputs, decided by the exporter and checked here against the manifest's features:
- numeric features only: one float32 input ``input`` of shape [N, n_features];
- any categorical feature: one input per feature, named after it, shape [N, 1]: float32 for
  numeric features, string for categorical ones.

skops: the file is inspected before it is loaded; it may only contain types that skops trusts
by default (scikit-learn, numpy, scipy basics) or that are listed in ``TRUSTED_SKOPS_TYPES``
below. The list lives here, in code that is reviewed, never in the artifact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from app.services.manifest import FeatureSpec
from app.services.records import matrix as float_matrix

MATRIX_INPUT = "input"
Value = float | str
Record = Mapping[str, Value]

# Types beyond skops' defaults that a skops bundle may contain: the tree structures of the
# estimators ml/train.py offers. Adding a type here means trusting its __setstate__ with
# attacker-controlled state: add only scikit-learn data-holding classes, after review.
TRUSTED_SKOPS_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


class RuntimeLoadError(Exception):
    """The model cannot be loaded by this runtime; the message says why."""


@dataclass(frozen=True)
class RawOutput:
    """Per record: the predicted label (classifier) or value (regressor), and class
    probabilities in the column order of the manifest's classes (classifier only)."""

    predictions: NDArray[Any]
    probabilities: NDArray[Any] | None


class Runtime(Protocol):
    def run(self, records: Sequence[Record]) -> RawOutput: ...


def onnx_input_specs(features: Sequence[FeatureSpec]) -> list[tuple[str, str]]:
    """(input name, element type) the ONNX graph must declare for these features."""
    if not any(feature.is_categorical for feature in features):
        return [(MATRIX_INPUT, "tensor(float)")]
    return [(f.name, "tensor(string)" if f.is_categorical else "tensor(float)") for f in features]


def _column(records: Sequence[Record], feature: FeatureSpec) -> NDArray[Any]:
    if feature.is_categorical:
        return np.array([[str(r[feature.name])] for r in records], dtype=object)
    return np.array([[r[feature.name]] for r in records], dtype=np.float32)


class OnnxRuntime:
    """An onnxruntime session on the CPU provider; safe to call from several threads."""

    def __init__(self, model: bytes, features: Sequence[FeatureSpec], threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                model, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
            raise RuntimeLoadError(f"onnxruntime cannot load the model: {exc}") from exc
        self._features = list(features)
        declared = [(i.name, i.type) for i in self._session.get_inputs()]
        expected = onnx_input_specs(self._features)
        if declared != expected:
            raise RuntimeLoadError(
                f"the ONNX graph's inputs {declared} do not fit the manifest's features "
                f"(expected {expected})"
            )
        self._matrix = expected[0][0] == MATRIX_INPUT
        self._names = [f.name for f in self._features]
        self._output_names = [output.name for output in self._session.get_outputs()]

    def _feeds(self, records: Sequence[Record]) -> dict[str, NDArray[Any]]:
        if self._matrix:
            return {MATRIX_INPUT: float_matrix(records, self._names).astype(np.float32)}
        return {f.name: _column(records, f) for f in self._features}

    def run(self, records: Sequence[Record]) -> RawOutput:
        results = self._session.run(None, self._feeds(records))
        outputs = dict(zip(self._output_names, results, strict=True))
        if "label" in outputs:
            return RawOutput(
                np.asarray(outputs["label"]).astype(str),
                np.asarray(outputs["probabilities"], dtype=np.float64),
            )
        return RawOutput(np.asarray(outputs["variable"], dtype=np.float64).reshape(-1), None)


class SkopsRuntime:
    """A scikit-learn pipeline loaded by skops after its types were checked."""

    def __init__(
        self, model: bytes, features: Sequence[FeatureSpec], classes: Sequence[str] | None
    ) -> None:
        import skops.io as sio  # only bundles in skops format need it

        try:
            untrusted = sio.get_untrusted_types(data=model)
        except Exception as exc:  # skops raises zipfile/json errors for a damaged file
            raise RuntimeLoadError(f"skops cannot read the model file: {exc}") from exc
        refused = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
        if refused:
            raise RuntimeLoadError(
                f"the skops file contains types Berth does not trust: {refused}. Loading them "
                "could run code. Use an estimator from ml/train.py, or review these types and "
                "add them to TRUSTED_SKOPS_TYPES in app/services/runtimes.py"
            )
        try:
            self._estimator: Any = sio.loads(model, trusted=list(TRUSTED_SKOPS_TYPES))
        except Exception as exc:
            raise RuntimeLoadError(f"skops cannot load the model: {exc}") from exc
        self._features = list(features)
        self._classifier = classes is not None
        if classes is not None:
            own = [str(c) for c in getattr(self._estimator, "classes_", [])]
            if own != list(classes):
                raise RuntimeLoadError(
                    f"the model's classes {own} differ from the manifest's {list(classes)}"
                )

    def _matrix(self, records: Sequence[Record]) -> NDArray[Any]:
        if not any(f.is_categorical for f in self._features):
            return float_matrix(records, [f.name for f in self._features])
        matrix = np.empty((len(records), len(self._features)), dtype=object)
        for column, feature in enumerate(self._features):
            for row, record in enumerate(records):
                value = record[feature.name]
                matrix[row, column] = str(value) if feature.is_categorical else float(value)
        return matrix

    def run(self, records: Sequence[Record]) -> RawOutput:
        matrix = self._matrix(records)
        if self._classifier:
            return RawOutput(
                np.asarray(self._estimator.predict(matrix)).astype(str),
                np.asarray(self._estimator.predict_proba(matrix), dtype=np.float64),
            )
        return RawOutput(np.asarray(self._estimator.predict(matrix), dtype=np.float64), None)
