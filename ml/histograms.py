"""Reference distributions for drift (``manifest.reference``): every feature and the predictions,
on the training split.

Numeric: up to ``bins`` bins with edges at quantiles of the data (equal-frequency bins, so the
population stability index compares like with like); the first and last edge are the observed
minimum and maximum. Categorical: the count of each value, every allowed value listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.services.manifest import (
    CategoricalHistogram,
    FeatureSpec,
    NumericHistogram,
    Reference,
)

DEFAULT_BINS = 10


def numeric_histogram(values: NDArray[Any], bins: int = DEFAULT_BINS) -> NumericHistogram:
    data = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(data, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:  # a constant column: one bin around the value
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    counts, _ = np.histogram(data, bins=edges)
    return NumericHistogram(
        edges=[round(float(e), 12) for e in edges], counts=[int(c) for c in counts]
    )


def categorical_histogram(values: Sequence[str], allowed: Sequence[str]) -> CategoricalHistogram:
    counts = dict.fromkeys(allowed, 0)
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return CategoricalHistogram(values=list(counts), counts=list(counts.values()))


def reference(
    columns: dict[str, Sequence[Any]],
    features: Sequence[FeatureSpec],
    predictions: NDArray[Any],
    classes: Sequence[str] | None,
    bins: int = DEFAULT_BINS,
) -> Reference:
    by_feature = {
        f.name: (
            categorical_histogram([str(v) for v in columns[f.name]], f.allowed or [])
            if f.is_categorical
            else numeric_histogram(np.asarray(columns[f.name], dtype=np.float64), bins)
        )
        for f in features
    }
    predicted = (
        categorical_histogram([str(p) for p in predictions], classes)
        if classes is not None
        else numeric_histogram(predictions.astype(np.float64), bins)
    )
    return Reference(features=by_feature, predictions=predicted)
