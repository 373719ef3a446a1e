"""The scheduler's Prometheus metrics, in a registry of their own (served on 127.0.0.1:9181).

A separate registry keeps the app's metrics (defined at import of the model store) out of the
scheduler's endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()
DURATION_BUCKETS_SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

JOB_RUNS = Counter(
    "berth_job_runs",
    "Scheduler job runs, by job and outcome (success, failure, missed).",
    ["job", "outcome"],
    registry=REGISTRY,
)
JOB_LAST_SUCCESS = Gauge(
    "berth_job_last_success_timestamp_seconds",
    "Unix time of the job's last successful run.",
    ["job"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "berth_job_duration_seconds",
    "Duration of job runs.",
    ["job"],
    buckets=DURATION_BUCKETS_SECONDS,
    registry=REGISTRY,
)
CLEANUP_BYTES_FREED = Counter(
    "berth_cleanup_bytes_freed",
    "Bytes freed by cleanup jobs (apparent file sizes).",
    ["job"],
    registry=REGISTRY,
)
CLEANUP_ITEMS_REMOVED = Counter(
    "berth_cleanup_items_removed",
    "Files, directories or images removed by cleanup jobs.",
    ["job"],
    registry=REGISTRY,
)
BATCH_ROWS_SCORED = Counter(
    "berth_batch_rows_scored", "Rows scored by batch runs and written out.", registry=REGISTRY
)
BATCH_LAST_SUCCESS = Gauge(
    "berth_batch_last_success_timestamp_seconds",
    "Unix time of the last successful batch run (with or without new rows).",
    registry=REGISTRY,
)
BATCH_LAG = Gauge(
    "berth_batch_lag_seconds",
    "Age of the oldest record waiting to be scored at the end of the last run (0 = none).",
    registry=REGISTRY,
)


def initialise(jobs: Iterable[str], cleanups: Iterable[str]) -> None:
    """Create every job's series at zero, so dashboards and ``increase()`` see a 0, not "no data",
    before a job has run (or freed anything)."""
    for job in jobs:
        for outcome in ("success", "failure", "missed"):
            JOB_RUNS.labels(job, outcome)
        JOB_DURATION.labels(job)
    for job in cleanups:
        CLEANUP_BYTES_FREED.labels(job)
        CLEANUP_ITEMS_REMOVED.labels(job)


def serve(host: str, port: int) -> None:
    """Expose the registry over HTTP in a daemon thread."""
    start_http_server(port, addr=host, registry=REGISTRY)
