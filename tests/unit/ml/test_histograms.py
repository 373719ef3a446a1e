"""Reference histograms (manifest.reference) for drift."""

from __future__ import annotations

import numpy as np

from app.services.manifest import CategoricalHistogram, FeatureSpec, NumericHistogram
from ml import histograms


def test_numeric_bins_are_equal_frequency_and_cover_every_value() -> None:
    values = np.arange(100, dtype=float)
    hist = histograms.numeric_histogram(values, bins=4)
    assert hist.edges[0] == 0.0 and hist.edges[-1] == 99.0
    assert len(hist.edges) == 5 and hist.counts == [25, 25, 25, 25]


def test_repeated_values_merge_bins_and_a_constant_gets_one_bin() -> None:
    hist = histograms.numeric_histogram(np.array([1.0] * 90 + [2.0] * 10), bins=10)
    assert sum(hist.counts) == 100 and hist.edges == sorted(set(hist.edges))
    constant = histograms.numeric_histogram(np.array([3.0, 3.0]))
    assert constant.edges == [2.5, 3.5] and constant.counts == [2]


def test_categorical_histogram_lists_every_allowed_value() -> None:
    hist = histograms.categorical_histogram(["a", "a", "c"], ["a", "b", "c"])
    assert hist.values == ["a", "b", "c"] and hist.counts == [2, 0, 1]


def test_reference_of_a_classifier_counts_classes() -> None:
    features = [
        FeatureSpec(name="x", dtype="float64", min=0.0, max=3.0),
        FeatureSpec(name="c", dtype="category", allowed=["u", "v"]),
    ]
    ref = histograms.reference(
        {"x": [0.0, 1.0, 2.0, 3.0], "c": ["u", "u", "v", "u"]},
        features,
        np.array(["yes", "no", "yes", "yes"]),
        ["no", "yes"],
    )
    assert isinstance(ref.features["x"], NumericHistogram)
    assert ref.features["c"] == CategoricalHistogram(values=["u", "v"], counts=[3, 1])
    assert ref.predictions == CategoricalHistogram(values=["no", "yes"], counts=[1, 3])
