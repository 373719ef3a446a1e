"""Prometheus metrics, correct with several Gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (before this module is first imported) every worker writes
its samples to files there and ``GET /metrics`` merges all workers' files; the directory must be
emptied before the server starts, and dead workers are marked by ``app.gunicorn_hooks``. Without
it (tests, development) the metrics live in this process's default registry.

Label values are bounded: routes are route templates, fields are manifest feature names.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.core.metric_buffer import Pending
from app.core.metric_buffer import observe_many as observe_many  # one histogram, many values

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # also read by app.gunicorn_hooks
# Request latencies are around a millisecond; the budget is 100 ms by default.
LATENCY_BUCKETS_SECONDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
LOAD_BUCKETS_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Scores are probabilities for classifiers (top class) and predicted values for regressors; the
# buckets suit the first and still say something about a regressor scaled to about [0, 1].
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

HTTP_REQUESTS = Counter(
    "berth_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "berth_http_request_duration_seconds",
    "Time from request start to the end of the response, by route template.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS_SECONDS,
)
HTTP_REQUESTS_IN_FLIGHT = Gauge(
    "berth_http_requests_in_flight",
    "HTTP requests being handled now, summed over live workers.",
    multiprocess_mode="livesum",
)
PREDICTIONS = Counter(
    "berth_predictions",
    "Records predicted, by model version, predicted class ('' for regression) and whether "
    "the answer was a fallback.",
    ["model_version", "class", "fallback"],
)
FALLBACKS = Counter(
    "berth_fallbacks",
    "Predict requests answered from the fallback cache or default answer, by reason.",
    ["reason"],
)
FALLBACKS_UNAVAILABLE = Counter(
    "berth_fallback_unavailable",
    "Predict requests answered 503 because the model failed or timed out and nothing could "
    "be fallen back on, by reason.",
    ["reason"],
)
VALIDATION_FAILURES = Counter(
    "berth_validation_failures",
    "Request validation errors (422), by field: a feature name, '_unknown_feature', or the "
    "request field.",
    ["field"],
)
MODEL_LOAD_FAILURES = Counter(
    "berth_model_load_failures", "Model bundle loads that failed verification or loading."
)
MODEL_LOAD_DURATION = Histogram(
    "berth_model_load_seconds",
    "Time to verify and load a model bundle (successful loads).",
    buckets=LOAD_BUCKETS_SECONDS,
)

PREDICTION_SCORE = Histogram(
    "berth_prediction_score",
    "Model answers (not fallbacks): the top class probability for a classifier, the predicted "
    "value for a regressor.",
    buckets=SCORE_BUCKETS,
)

# Gauges below are per worker. In multiprocess mode each one says how the workers' values merge,
# and every one uses a ``live*`` mode: a dead worker's value must not linger (``child_exit``
# deletes its files). See docs/observability.md.
MODEL_INFO = Gauge(
    "berth_model_info",
    "1 for the model (name, version) a live worker serves; two versions during a reload.",
    ["name", "version"],
    multiprocess_mode="livemax",
)
MODEL_CREATED = Gauge(
    "berth_model_created_timestamp_seconds",
    "Export time of the newest model a live worker serves (Unix seconds); the model's age is "
    "time() - this.",
    multiprocess_mode="livemax",
)
MODEL_READY = Gauge(
    "berth_model_ready",
    "1 when every live worker serves a verified model, 0 when any one has none.",
    multiprocess_mode="livemin",
)
FEATURE_PSI = Gauge(
    "berth_feature_psi",
    "Population stability index of a feature's recent values (a sliding window per worker) "
    "against the manifest's reference histogram; the worst live worker. Above 0.2: drifted.",
    ["feature"],
    multiprocess_mode="livemax",
)
PREDICTION_PSI = Gauge(
    "berth_prediction_psi",
    "Population stability index of recent predictions (classes, or binned values) against the "
    "manifest's reference; the worst live worker.",
    multiprocess_mode="livemax",
)
DRIFT_WINDOW_RECORDS = Gauge(
    "berth_drift_window_records",
    "Records in the drift windows the PSI gauges were last computed from, summed over live "
    "workers; PSI values from few records are noisy.",
    multiprocess_mode="livesum",
)


def model_loaded(name: str, version: str, created_timestamp: float) -> None:
    """This worker now serves ``name``/``version``; forget the one it served before, if any."""
    for labels in _served:
        MODEL_INFO.labels(*labels).set(0)
    _served[:] = [(name, version)]
    MODEL_INFO.labels(name, version).set(1)
    MODEL_CREATED.set(created_timestamp)
    MODEL_READY.set(1)


_served: list[tuple[str, str]] = []


# Per-request updates (request counts and latencies, predictions, scores, in-flight requests)
# go through ``pending``: collected in process in multiprocess mode (``configure``).
pending = Pending(HTTP_REQUESTS_IN_FLIGHT)


def configure(flush_seconds: float) -> None:
    """Collect per-request updates for at most ``flush_seconds`` before writing them, in
    multiprocess mode only (where each write is an mmap update); else write each at once."""
    pending.configure(flush_seconds if multiprocess_dir() else 0.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_ENV) or None


def render() -> tuple[bytes, str]:
    """The exposition text of all workers' metrics (or this process's) and its content type."""
    pending.flush()  # this worker's updates are all in the scrape
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
