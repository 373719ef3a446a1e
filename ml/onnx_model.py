"""Convert a fitted scikit-learn pipeline to ONNX, working around known converter gaps.

Inputs follow ``app.services.runtimes.onnx_input_specs``: one float32 matrix ``input`` when
every feature is numeric, else one [N, 1] input per feature (string for categorical ones).
Classifiers output ``label`` and a plain ``probabilities`` matrix (no ZipMap), columns in
``classes_`` order; regressors output ``variable``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from skl2onnx import to_onnx
from skl2onnx.common import tree_ensemble
from skl2onnx.common.data_types import DataType, FloatTensorType, StringTensorType
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from app.services.manifest import FeatureSpec
from app.services.runtimes import MATRIX_INPUT, onnx_input_specs
from ml.stage import StageError

log = logging.getLogger(__name__)


class ConversionError(StageError):
    """skl2onnx could not convert the estimator."""


@contextmanager
def converter_gap_fixes() -> Iterator[None]:
    """Patches for skl2onnx bugs, active only during one conversion.

    skl2onnx 1.20 passes ``missing_go_to_left`` of HistGradientBoosting trees (and ``False`` for
    leaves) as a Python/numpy boolean into the int list ``nodes_missing_value_tracks_true``;
    onnx rejects it ("Expected an int, got a boolean"). The value means the same as an int 0/1,
    so it is passed as one. The export still checks the converted model against scikit-learn,
    so a wrong patch cannot ship silently.
    """
    original = tree_ensemble.add_node

    def add_node(*args: Any, **kwargs: Any) -> Any:
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(
                kwargs["nodes_missing_value_tracks_true"]
            )
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def initial_types(features: Sequence[FeatureSpec]) -> list[tuple[str, DataType]]:
    specs = onnx_input_specs(features)
    if specs[0][0] == MATRIX_INPUT:
        return [(MATRIX_INPUT, FloatTensorType([None, len(features)]))]
    return [
        (
            name,
            StringTensorType([None, 1])
            if kind == "tensor(string)"
            else FloatTensorType([None, 1]),
        )
        for name, kind in specs
    ]


def convert(
    pipeline: Pipeline,
    features: Sequence[FeatureSpec],
    opset: int,
    opset_ml: int,
    fix_gaps: bool = True,
) -> bytes:
    """The serialized ONNX model, or ``ConversionError`` with skl2onnx's reason."""
    options: dict[int, dict[str, Any]] = {}
    if is_classifier(pipeline):
        options[id(pipeline)] = {"zipmap": False}
    try:
        if fix_gaps:
            with converter_gap_fixes():
                model = _to_onnx(pipeline, features, opset, opset_ml, options)
        else:
            model = _to_onnx(pipeline, features, opset, opset_ml, options)
    except Exception as exc:  # skl2onnx raises many unrelated types for unsupported models
        reason = str(exc.__cause__ or exc).splitlines()[-1][:300]
        raise ConversionError(
            f"skl2onnx cannot convert {type(pipeline[-1]).__name__}: {reason}"
        ) from exc
    data: bytes = model.SerializeToString()
    return data


def _to_onnx(
    pipeline: Pipeline,
    features: Sequence[FeatureSpec],
    opset: int,
    opset_ml: int,
    options: dict[int, dict[str, Any]],
) -> Any:
    return to_onnx(
        pipeline,
        initial_types=initial_types(features),
        target_opset={"": opset, "ai.onnx.ml": opset_ml},
        options=options,
    )
