"""Per-request metric updates collected in process (``Pending``) and written on flush."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.core.metric_buffer import MAX_PENDING_VALUES, Pending

BUCKETS = (0.1, 0.5, 1.0)


def metrics() -> tuple[CollectorRegistry, Counter, Histogram, Gauge]:
    registry = CollectorRegistry()
    counter = Counter("c", "c", registry=registry)
    histogram = Histogram("h", "h", buckets=BUCKETS, registry=registry)
    gauge = Gauge("g", "g", registry=registry)
    return registry, counter, histogram, gauge


def snapshot(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_without_flush_interval_every_update_is_written_at_once() -> None:
    registry, counter, histogram, gauge = metrics()
    pending = Pending(gauge)
    pending.inc(counter, 2)
    pending.observe(histogram, 0.3)
    pending.observe_many(histogram, [0.05, 2.0])
    pending.request_started()
    assert registry.get_sample_value("c_total") == 2
    assert registry.get_sample_value("h_count") == 3
    assert registry.get_sample_value("g") == 1
    pending.request_ended()
    assert registry.get_sample_value("g") == 0


def test_collected_updates_equal_direct_ones_after_flush() -> None:
    registry, counter, histogram, gauge = metrics()
    expected, e_counter, e_histogram, e_gauge = metrics()
    pending = Pending(gauge)
    pending.configure(60.0)  # no background flush during the test
    values = [0.0, 0.1, 0.10001, 0.5, 0.7, 1.0, 3.0, -1.0]
    for value in values[:3]:
        pending.observe(histogram, value)
        e_histogram.observe(value)
    pending.observe_many(histogram, values[3:])
    for value in values[3:]:
        e_histogram.observe(value)
    pending.inc(counter)
    pending.inc(counter, 4)
    e_counter.inc(5)
    pending.request_started()
    pending.request_started()
    pending.request_ended()
    e_gauge.set(1)
    assert registry.get_sample_value("c_total") == 0  # not yet written
    assert registry.get_sample_value("h_count") == 0
    pending.flush()
    assert snapshot(registry) == snapshot(expected)
    pending.flush()  # nothing pending: nothing changes
    assert snapshot(registry) == snapshot(expected)


def test_many_pending_values_are_folded_into_bucket_counts() -> None:
    registry, _, histogram, gauge = metrics()
    pending = Pending(gauge)
    pending.configure(60.0)
    for _ in range(3):
        pending.observe_many(histogram, [0.2] * (MAX_PENDING_VALUES // 2 + 1))
    pending.flush()
    count = 3 * (MAX_PENDING_VALUES // 2 + 1)
    assert registry.get_sample_value("h_bucket", {"le": "0.5"}) == count
    assert registry.get_sample_value("h_bucket", {"le": "0.1"}) == 0


def test_updates_are_written_within_the_flush_interval() -> None:
    registry, counter, _, gauge = metrics()
    pending = Pending(gauge)
    pending.configure(0.05)
    pending.inc(counter, 3)
    deadline = time.monotonic() + 5
    while registry.get_sample_value("c_total") != 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.get_sample_value("c_total") == 3
    pending.inc(counter)  # the flusher keeps working after its first flush
    while registry.get_sample_value("c_total") != 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.get_sample_value("c_total") == 4
