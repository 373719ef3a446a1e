"""PSI arithmetic against values computed by hand, binning, windows and report timing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.services.drift import FEW_ROWS, PSI_EPSILON, Binner, DriftMonitor, RingBuffer, psi
from app.services.manifest import CategoricalHistogram, NumericHistogram, Reference


def test_psi_of_identical_distributions_is_zero() -> None:
    assert psi([10, 20, 70], [1, 2, 7]) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_hand_computation() -> None:
    # shares e = (0.5, 0.5), a = (0.8, 0.2):
    # (0.8-0.5)*ln(0.8/0.5) + (0.2-0.5)*ln(0.2/0.5) = 0.3*0.470004 + 0.3*0.916291 = 0.415888
    assert psi([50, 50], [80, 20]) == pytest.approx(0.415888, abs=1e-6)
    # e = (0.25, 0.25, 0.5), a = (0.5, 0.25, 0.25): 0.25*ln 2 + 0 + (-0.25)*ln(0.5) = 0.5*ln 2
    assert psi([1, 1, 2], [2, 1, 1]) == pytest.approx(0.5 * math.log(2), abs=1e-12)


def test_empty_bins_count_as_epsilon() -> None:
    # e = (1, eps), a = (0.5, 0.5): (0.5-1)*ln(0.5) + (0.5-eps)*ln(0.5/eps)
    expected = -0.5 * math.log(0.5) + (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON)
    assert psi([100, 0], [50, 50]) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(4.604319, abs=1e-6)


def test_psi_refuses_mismatched_or_empty_histograms() -> None:
    with pytest.raises(ValueError, match="shape"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least one count"):
        psi([0, 0], [1, 2])


def test_numeric_binner_uses_open_end_bins_and_histogram_edges() -> None:
    binner = Binner(NumericHistogram(edges=[0, 1, 2, 3], counts=[1, 1, 1]))
    values = np.array([-5, 0, 0.99, 1, 2.5, 3, 10], dtype=np.float64)
    # Same bins as numpy.histogram inside the edges; outside values go to the end bins.
    assert binner.counts(values).tolist() == [3, 1, 3]
    inside = values[(values >= 0) & (values <= 3)]
    assert binner.counts(inside).tolist() == np.histogram(inside, [0, 1, 2, 3])[0].tolist()


def test_categorical_binner_has_an_unseen_bin() -> None:
    binner = Binner(CategoricalHistogram(values=["a", "b"], counts=[3, 1]))
    codes = np.array([binner.code(v) for v in ["a", "c", "b", "a", "zzz"]])
    assert binner.counts(codes).tolist() == [2, 1, 2]
    assert binner.expected == [3, 1, 0]


def test_ring_buffer_keeps_the_last_rows() -> None:
    ring = RingBuffer(3, 1)
    ring.extend(np.array([[1.0], [2.0]]))
    assert sorted(ring.rows()[:, 0]) == [1.0, 2.0]
    ring.extend(np.array([[3.0], [4.0]]))  # wraps around
    assert sorted(ring.rows()[:, 0]) == [2.0, 3.0, 4.0]
    ring.extend(np.array([[5.0], [6.0], [7.0], [8.0]]))  # more than the window
    assert sorted(ring.rows()[:, 0]) == [6.0, 7.0, 8.0]


REFERENCE = Reference(
    features={
        "x": NumericHistogram(edges=[0, 1, 2], counts=[50, 50]),
        "y": NumericHistogram(edges=[0, 10], counts=[0]),  # unusable: no PSI for y
    },
    predictions=CategoricalHistogram(values=["p", "q"], counts=[50, 50]),
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_monitor_reports_once_enough_records_and_then_per_interval() -> None:
    clock = FakeClock()
    monitor = DriftMonitor(
        REFERENCE, ["x", "y", "z"], window=10, min_records=4, interval_seconds=5, clock=clock
    )
    assert monitor.features == ["x"]
    records = [{"x": 0.5, "y": 1.0, "z": 3.0}] * 3
    assert monitor.record(records, ["p", "p", "p"]) is None  # 3 < min_records
    report = monitor.record([{"x": 1.5, "y": 1.0, "z": 0.0}], ["q"])
    assert report is not None
    # window x: 3 in bin 0, 1 in bin 1 -> shares (0.75, 0.25) vs (0.5, 0.5)
    assert report.feature_psi == {"x": pytest.approx(psi([1, 1], [3, 1]))}
    assert report.prediction_psi == pytest.approx(psi([1, 1], [3, 1]))
    assert (report.records, report.predictions) == (4, 4)
    clock.now = 4.9
    assert monitor.record(records, None) is None  # within the interval
    clock.now = 5.0
    report = monitor.record([{"x": 1.5, "y": 0, "z": 0}] * 2, None)  # fallbacks: inputs only
    assert report is not None
    assert (report.records, report.predictions) == (9, 4)


def test_monitor_window_slides() -> None:
    monitor = DriftMonitor(REFERENCE, ["x"], window=4, min_records=1, interval_seconds=0)
    monitor.record([{"x": 0.1}] * 4, None)
    report = monitor.record([{"x": 1.9}] * 4, None)
    assert report is not None
    # only the last 4 records (all in bin 1) remain
    assert report.feature_psi["x"] == pytest.approx(psi([50, 50], [0, 4]))
    assert report.prediction_psi is None


def test_small_and_large_requests_enter_the_window_in_order() -> None:
    """Small requests wait as rows of floats, larger ones as their matrix: folded in the order
    they came, so the window keeps the latest records."""
    clock = FakeClock()
    monitor = DriftMonitor(
        REFERENCE, ["x"], window=6, min_records=1, interval_seconds=5, clock=clock
    )
    assert monitor.record([{"x": 0.1}], None) is not None  # the first report: the clock starts
    for now, value, count in [(1, 1.9, 2), (2, 0.1, FEW_ROWS + 1), (3, 1.9, 3)]:
        clock.now = now
        assert monitor.record([{"x": value}] * count, None) is None  # pending
    clock.now = 5.0
    report = monitor.record([{"x": 0.1}], None)
    assert report is not None
    # the last six: 0.1 0.1 (end of the large request), 1.9 1.9 1.9, 0.1
    assert report.feature_psi["x"] == pytest.approx(psi([50, 50], [3, 3]))
    assert report.records == 6


def test_reference_histograms_are_checked() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="one more edge than counts"):
        NumericHistogram(edges=[0, 1], counts=[1, 2])
    with pytest.raises(ValidationError, match="increasing order"):
        NumericHistogram(edges=[0, 2, 1], counts=[1, 2])
    with pytest.raises(ValidationError, match="one count per value"):
        CategoricalHistogram(values=["a", "b"], counts=[1])
    with pytest.raises(ValidationError, match="unique"):
        CategoricalHistogram(values=["a", "a"], counts=[1, 1])
    # Repeated quantile edges are allowed: the bin between them stays empty.
    binner = Binner(NumericHistogram(edges=[0, 1, 1, 2], counts=[5, 0, 5]))
    assert binner.counts(np.array([0.5, 1.0, 1.5])).tolist() == [1, 0, 2]


def test_codes_equal_code_one_by_one() -> None:
    categorical = Binner(CategoricalHistogram(values=["a", "b"], counts=[1, 1]))
    numeric = Binner(NumericHistogram(edges=[0.0, 1.0, 2.0], counts=[1, 1]))
    for binner, values in (
        (categorical, ["a", "b", "c", 1, 1.5, "a"]),
        (numeric, [0.5, 3, -1.0, 2.0]),
    ):
        assert binner.codes(values) == [binner.code(value) for value in values]
