"""Per-request metric updates, collected in process and written to prometheus_client in one go.

In multiprocess mode (several Gunicorn workers) every counter increment or histogram
observation is a write to a memory-mapped file under a lock, after a ``getpid`` system call:
about eight per predict request, a tenth of a one-record request's CPU time. ``Pending`` adds
them up in plain Python instead and writes the totals (one write per series, and per histogram
bucket touched) at most ``flush_seconds`` later, from a background thread, and at once before a
scrape renders the metrics (``app.core.metrics.render``) and when the worker stops. So the
worker that answers a scrape shows every update it made; another worker's are at most
``flush_seconds`` late.

The in-flight gauge is kept as a count here and set when flushed. Without ``flush_seconds``
(single-process mode, where an update is only a locked add in memory) every update is applied
at once, as before.
"""

from __future__ import annotations

import atexit
import bisect
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

# Observations kept as values before they are folded into bucket counts (bounded memory).
MAX_PENDING_VALUES = 10_000


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value, in one pass: one write per bucket touched
    instead of several per value (in multiprocess mode each write is an mmap update).

    Relies on prometheus_client's Histogram internals (per-bucket values, ``_sum``); the unit
    test checks the result against plain ``observe``.
    """
    if len(values) < 4:  # numpy's fixed cost is higher than a few observe() calls
        for value in values:
            histogram.observe(value)
        return
    array = np.asarray(values, dtype=np.float64)
    bounds: list[float] = histogram._upper_bounds
    # observe() counts a value in the first bucket whose upper bound is >= the value.
    counts = np.bincount(np.searchsorted(bounds, array, side="left"), minlength=len(bounds))
    _add_counts(histogram, counts.tolist(), float(array.sum()))


def _add_counts(histogram: Histogram, counts: Sequence[int], total: float) -> None:
    buckets = histogram._buckets
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    histogram._sum.inc(total)


class _Observations:
    """One histogram's pending observations: bucket counts, and recent raw values."""

    __slots__ = ("counts", "total", "values")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0
        self.values: list[float] = []

    def fold(self, histogram: Histogram) -> None:
        """Turn the raw values into bucket counts (vectorised)."""
        if not self.values:
            return
        array = np.asarray(self.values, dtype=np.float64)
        self.values = []
        bounds = histogram._upper_bounds
        indexes = np.searchsorted(bounds, array, side="left")
        for index, count in enumerate(np.bincount(indexes, minlength=len(bounds)).tolist()):
            self.counts[index] += count
        self.total += float(array.sum())


class Pending:
    """Metric updates not yet written (see the module docstring); thread-safe."""

    def __init__(self, in_flight: Gauge) -> None:
        self.flush_seconds = 0.0
        self._in_flight_gauge = in_flight
        self._in_flight = 0
        self._in_flight_written: int | None = None
        self._counts: dict[Any, float] = {}
        self._observations: dict[Any, _Observations] = {}
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._flusher: threading.Thread | None = None
        atexit.register(self.flush)

    def configure(self, flush_seconds: float) -> None:
        """Collect updates for at most ``flush_seconds`` (0: apply each at once)."""
        self.flush()
        self.flush_seconds = flush_seconds

    def inc(self, counter: Counter, amount: float = 1.0) -> None:
        if not self.flush_seconds:
            counter.inc(amount)
            return
        with self._lock:
            counts = self._counts
            counts[counter] = counts.get(counter, 0.0) + amount
            self._wake()

    def observe(self, histogram: Histogram, value: float) -> None:
        if not self.flush_seconds:
            histogram.observe(value)
            return
        with self._lock:
            pending = self._observations.get(histogram)
            if pending is None:
                pending = self._observations[histogram] = _Observations(
                    len(histogram._upper_bounds)
                )
            # The first bucket whose upper bound is >= the value, as observe() counts it.
            pending.counts[bisect.bisect_left(histogram._upper_bounds, value)] += 1
            pending.total += value
            self._wake()

    def observe_many(self, histogram: Histogram, values: Sequence[float]) -> None:
        if not self.flush_seconds:
            observe_many(histogram, values)
            return
        with self._lock:
            pending = self._observations.get(histogram)
            if pending is None:
                pending = self._observations[histogram] = _Observations(
                    len(histogram._upper_bounds)
                )
            pending.values.extend(values)
            if len(pending.values) >= MAX_PENDING_VALUES:
                pending.fold(histogram)
            self._wake()

    def request_started(self) -> None:
        if not self.flush_seconds:
            self._in_flight_gauge.inc()
            return
        self._in_flight += 1  # the event loop's thread only: no lock needed for an int

    def request_ended(self) -> None:
        if not self.flush_seconds:
            self._in_flight_gauge.dec()
            return
        self._in_flight -= 1
        if self._in_flight_written != self._in_flight:
            with self._lock:
                self._wake()

    def _wake(self) -> None:
        """Called with the lock held after an update: make sure a flush is coming."""
        if self._due.is_set():
            return
        if self._flusher is None or not self._flusher.is_alive():  # also after a fork
            self._flusher = threading.Thread(
                target=self._flush_later, name="berth-metrics-flush", daemon=True
            )
            self._flusher.start()
        self._due.set()

    def _flush_later(self) -> None:
        while True:
            self._due.wait()
            time.sleep(self.flush_seconds)
            self._due.clear()
            try:
                self.flush()
            except Exception:  # a failed write must not end the flusher
                continue

    def flush(self) -> None:
        """Write every pending update now."""
        with self._lock:
            counts, self._counts = self._counts, {}
            observations, self._observations = self._observations, {}
            in_flight = self._in_flight
            write_gauge = self.flush_seconds > 0 and in_flight != self._in_flight_written
            self._in_flight_written = in_flight
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, pending in observations.items():
            pending.fold(histogram)
            _add_counts(histogram, pending.counts, pending.total)
        if write_gauge:
            self._in_flight_gauge.set(in_flight)
