"""Convert a fitted scikit-learn pipeline to ONNX, and run ONNX models with onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from ml.stage import StageError

INPUT_NAME = "input"


class ConversionError(StageError):
    """skl2onnx could not convert the estimator."""


def convert(pipeline: Pipeline, n_features: int, opset: int, opset_ml: int) -> bytes:
    """Serialized ONNX model with one float32 input ``input`` of shape [N, n_features].

    Classifiers output ``label`` and a plain ``probabilities`` matrix (no ZipMap), columns in
    ``classes_`` order; regressors output ``variable``.
    """
    options: dict[int, dict[str, Any]] = {}
    if is_classifier(pipeline):
        options[id(pipeline)] = {"zipmap": False}
    try:
        model = to_onnx(
            pipeline,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            target_opset={"": opset, "ai.onnx.ml": opset_ml},
            options=options,
        )
    except Exception as exc:  # skl2onnx raises many unrelated types for unsupported models
        raise ConversionError(
            f"skl2onnx cannot convert {type(pipeline[-1]).__name__}: {exc}"
        ) from exc
    data: bytes = model.SerializeToString()
    return data


@dataclass(frozen=True)
class OnnxOutputs:
    predictions: NDArray[Any]
    probabilities: NDArray[Any] | None


def run_onnx(model: bytes, inputs: NDArray[Any]) -> OnnxOutputs:
    """Run ``model`` on a float32 matrix, the way the server runs it (CPU, one thread)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    results = session.run(None, {INPUT_NAME: inputs})
    by_name = dict(zip(names, results, strict=True))
    if "label" in by_name:
        return OnnxOutputs(np.asarray(by_name["label"]), np.asarray(by_name["probabilities"]))
    return OnnxOutputs(np.asarray(by_name["variable"]).reshape(-1), None)
