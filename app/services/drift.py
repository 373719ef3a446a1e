"""Drift: the population stability index (PSI) of recent inputs and predictions against the
reference histograms of the model's manifest.

Each worker keeps the last ``window`` records (and the last ``window`` model predictions) in
ring buffers. Recording a request appends its rows to a pending list, moved into the buffers in
one array write every few hundred rows and before each report; the PSI is computed from the whole
window at most every ``interval_seconds``, and only once at least ``min_records`` were seen.

PSI = sum over bins of (a - e) * ln(a / e), where a and e are the live and reference shares of
the bin; empty bins count as ``PSI_EPSILON`` so the sum stays finite. Numeric values outside
the reference edges count in the first or last bin (training saw no such values, so the end
bins are open); a category not in the reference counts in an extra "unseen" bin whose reference
share is empty. Rule of thumb: below 0.1 stable, 0.1 to 0.2 moderate shift, above 0.2 drift.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.services.manifest import CategoricalHistogram, Histogram, Reference
from app.services.records import matrix, value_getter

PSI_EPSILON = 1e-4
PENDING_ROWS = 256
# Up to this many records a request's values are kept as rows of Python floats, turned into
# one array when folded; more get their own matrix.
FEW_ROWS = 8


def psi(
    expected: Sequence[float] | npt.NDArray[Any], actual: Sequence[float] | npt.NDArray[Any]
) -> float:
    """PSI of ``actual`` bin counts against ``expected`` bin counts (same bins, same order)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"bin counts differ in shape: {e.shape} vs {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("both histograms need at least one count")
    e_share = np.maximum(e / e.sum(), PSI_EPSILON)
    a_share = np.maximum(a / a.sum(), PSI_EPSILON)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


class Binner:
    """Maps raw values to bin indexes of one reference histogram.

    Numeric values are kept as they are until ``bins`` (vectorised, at compute time);
    categorical values are turned into codes when recorded (``code``), ``len(values)`` for
    values the reference does not know.
    """

    def __init__(self, histogram: Histogram) -> None:
        self.categorical = isinstance(histogram, CategoricalHistogram)
        self._inner_edges: npt.NDArray[np.float64]
        if isinstance(histogram, CategoricalHistogram):
            self._codes = {value: float(i) for i, value in enumerate(histogram.values)}
            self.expected = [*histogram.counts, 0]  # the "unseen" bin
            self._inner_edges = np.empty(0, dtype=np.float64)
        else:
            self._codes = {}
            self.expected = list(histogram.counts)
            self._inner_edges = np.asarray(histogram.edges[1:-1], dtype=np.float64)

    def code(self, value: object) -> float:
        """The value to store in the window: a category's code, or the number itself."""
        if self.categorical:
            return self._codes.get(str(value), float(len(self._codes)))
        return float(value)  # type: ignore[arg-type]

    def codes(self, values: Iterable[object]) -> list[float]:
        """``code`` of every value (one lookup per value for categories, no call)."""
        if not self.categorical:
            return list(map(float, values))  # type: ignore[arg-type]
        get, unseen = self._codes.get, float(len(self._codes))
        return [get(v if type(v) is str else str(v), unseen) for v in values]

    def counts(self, stored: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Counts per bin of stored values (codes or numbers)."""
        if self.categorical:
            indexes = stored.astype(np.int64)
        else:
            # side="right": a value on an inner edge opens the next bin, like numpy.histogram.
            indexes = np.searchsorted(self._inner_edges, stored, side="right")
        return np.bincount(indexes, minlength=len(self.expected))


class RingBuffer:
    """The last ``size`` rows of ``columns`` float64 values."""

    def __init__(self, size: int, columns: int) -> None:
        self.size = size
        self._data = np.zeros((size, columns), dtype=np.float64)
        self._next = 0
        self.filled = 0

    def extend(self, rows: npt.NDArray[np.float64]) -> None:
        rows = rows[-self.size :]
        n = len(rows)
        end = self._next + n
        if end <= self.size:
            self._data[self._next : end] = rows
        else:
            first = self.size - self._next
            self._data[self._next :] = rows[:first]
            self._data[: n - first] = rows[first:]
        self._next = end % self.size
        self.filled = min(self.size, self.filled + n)

    def rows(self) -> npt.NDArray[np.float64]:
        return self._data[: self.filled]


@dataclass(frozen=True)
class DriftReport:
    feature_psi: dict[str, float]
    prediction_psi: float | None
    records: int
    predictions: int


class DriftMonitor:
    """Sliding windows of one model's inputs and predictions, and their PSI."""

    def __init__(
        self,
        reference: Reference,
        feature_names: Sequence[str],
        window: int = 1000,
        min_records: int = 100,
        interval_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Features without a usable reference (absent, or all counts zero) get no PSI.
        self.features = [
            name
            for name in feature_names
            if name in reference.features and sum(reference.features[name].counts) > 0
        ]
        self._feature_binners = [Binner(reference.features[name]) for name in self.features]
        self._numeric = not any(binner.categorical for binner in self._feature_binners)
        self._prediction_binner = Binner(reference.predictions)
        self._inputs = RingBuffer(window, max(1, len(self.features)))
        self._predictions = RingBuffer(window, 1)
        self.min_records = min(min_records, window)
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._last_compute: float | None = None
        self._lock = threading.Lock()
        # Recorded but not yet in the windows: moved in at most every PENDING_ROWS rows and
        # before every report (one array write per batch of requests, not per request).
        # A part is a request's matrix, or the value rows of a run of small requests.
        self._pending_rows: list[npt.NDArray[np.float64] | list[tuple[Any, ...]]] = []
        self._values = value_getter(tuple(self.features))
        self._pending_count = 0
        self._pending_predictions: list[float] = []

    def record(
        self,
        records: Sequence[Mapping[str, object]],
        predictions: Sequence[str] | Sequence[float] | None,
    ) -> DriftReport | None:
        """Add a request's records (and the model's predictions, None for a fallback); returns
        a new report when one is due (then publish it), else None."""
        rows: npt.NDArray[np.float64] | list[tuple[Any, ...]] | None = None
        if self.features:
            names = self.features
            if self._numeric and len(records) <= FEW_ROWS:  # numpy per request costs more
                rows = list(map(self._values, records))
            elif self._numeric:
                rows = matrix(records, names)
            else:
                binners = self._feature_binners
                rows = np.array(
                    [[b.code(r[n]) for b, n in zip(binners, names, strict=True)] for r in records],
                    np.float64,
                )
        with self._lock:
            if rows is not None:
                pending = self._pending_rows
                if isinstance(rows, list) and pending and isinstance(pending[-1], list):
                    pending[-1].extend(rows)  # one array for a run of small requests
                else:
                    pending.append(rows)
                self._pending_count += len(rows)
            if predictions is not None:
                self._pending_predictions.extend(self._prediction_binner.codes(predictions))
            now = self._clock()
            if self._last_compute is not None and now - self._last_compute < self.interval_seconds:
                if self._pending_count >= PENDING_ROWS or len(self._pending_predictions) >= (
                    PENDING_ROWS
                ):
                    self._fold()
                return None
            self._fold()
            if self._inputs.filled < self.min_records:
                return None
            self._last_compute = now
            return self._report()

    def _fold(self) -> None:
        """Move the pending rows and predictions into the windows (with the lock held)."""
        if self._pending_rows:
            width = len(self.features)
            rows = [
                np.array(part, np.float64).reshape(-1, width) if isinstance(part, list) else part
                for part in self._pending_rows
            ]
            self._inputs.extend(rows[0] if len(rows) == 1 else np.concatenate(rows))
            self._pending_rows, self._pending_count = [], 0
        if self._pending_predictions:
            coded = np.asarray(self._pending_predictions, np.float64).reshape(-1, 1)
            self._predictions.extend(coded)
            self._pending_predictions = []

    def report(self) -> DriftReport:
        """The PSI of the windows as they are now (whatever their size)."""
        with self._lock:
            self._fold()
            return self._report()

    def _report(self) -> DriftReport:
        inputs = self._inputs.rows()
        feature_psi = {}
        if len(inputs):
            for column, (name, binner) in enumerate(
                zip(self.features, self._feature_binners, strict=True)
            ):
                feature_psi[name] = psi(binner.expected, binner.counts(inputs[:, column]))
        prediction_psi = None
        predictions = self._predictions.rows()
        if len(predictions) >= self.min_records and sum(self._prediction_binner.expected) > 0:
            binner = self._prediction_binner
            prediction_psi = psi(binner.expected, binner.counts(predictions[:, 0]))
        return DriftReport(
            {k: v for k, v in feature_psi.items() if math.isfinite(v)},
            prediction_psi,
            records=len(inputs),
            predictions=len(predictions),
        )
