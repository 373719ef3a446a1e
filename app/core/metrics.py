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
    "berth_model_load_duration_seconds",
    "Time to verify and load a model bundle (successful loads).",
    buckets=LOAD_BUCKETS_SECONDS,
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_ENV) or None


def render() -> tuple[bytes, str]:
    """The exposition text of all workers' metrics (or this process's) and its content type."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
