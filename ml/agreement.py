"""Does a converted model give scikit-learn's answers? Used by ``train`` (to pick the format)
and by ``export`` (the gate)."""

from __future__ import annotations

import numpy as np

from app.services.runtimes import RawOutput
from ml.reference import SklearnReference
from ml.stage import StageError


class DisagreementError(StageError):
    """The model's outputs differ from scikit-learn's beyond the tolerance."""


def check_agreement(
    outputs: RawOutput, reference: SklearnReference, tolerance: float, what: str = "ONNX"
) -> float:
    """The largest difference found; ``DisagreementError`` when beyond ``tolerance``."""
    expected = reference.predictions
    if reference.task == "classification":
        got = outputs.predictions.astype(str)
        mismatches = int(np.sum(got != np.asarray(expected, dtype=str)))
        if mismatches:
            raise DisagreementError(
                f"{what} and scikit-learn predict different classes for {mismatches} of "
                f"{len(expected)} test rows; the conversion is wrong for this estimator"
            )
        if outputs.probabilities is None or reference.probabilities is None:
            raise DisagreementError("a classifier must output probabilities")
        diff = float(np.max(np.abs(outputs.probabilities - np.asarray(reference.probabilities))))
        kind = "probabilities"
    else:
        values = np.asarray(expected, dtype=np.float64)
        got_values = outputs.predictions.astype(np.float64)
        # Relative for values beyond 1 in magnitude: float32 keeps ~7 significant digits.
        diff = float(np.max(np.abs(got_values - values) / np.maximum(1.0, np.abs(values))))
        kind = "predictions (relative)"
    if not diff <= tolerance:
        raise DisagreementError(
            f"{what} {kind} differ from scikit-learn's by up to {diff:.3g}, more than the "
            f"tolerance {tolerance}; the conversion is not faithful for this estimator"
        )
    return diff
