"""Metrics as one process sees them (the default registry), read through GET /metrics."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_endpoint_serves_prometheus_text(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "berth_http_requests_total",
        "berth_http_request_duration_seconds_bucket",
        "berth_http_requests_in_flight",
        "berth_model_load_seconds_count",
        "berth_model_load_failures_total",
    ):
        assert f"\n{name}" in text, name
    assert 'le="0.001"' in text


def test_requests_are_counted_by_route_and_status(
    client: TestClient, sample_record: dict[str, float]
) -> None:
    labels = {"route": "/v1/predict", "method": "POST", "status": "200"}
    before = _sample("berth_http_requests_total", **labels)
    hist_before = _sample(
        "berth_http_request_duration_seconds_count", route="/v1/predict", method="POST"
    )
    for _ in range(3):
        assert client.post("/v1/predict", json={"records": [sample_record]}).status_code == 200
    assert _sample("berth_http_requests_total", **labels) == before + 3
    assert (
        _sample("berth_http_request_duration_seconds_count", route="/v1/predict", method="POST")
        == hist_before + 3
    )
    assert _sample("berth_http_requests_in_flight") == 0


def test_unmatched_paths_share_one_label(client: TestClient) -> None:
    labels = {"route": "_unmatched", "method": "GET", "status": "404"}
    before = _sample("berth_http_requests_total", **labels)
    client.get("/no/such/path/1")
    client.get("/another-random-path")
    assert _sample("berth_http_requests_total", **labels) == before + 2
    assert "/no/such/path/1" not in client.get("/metrics").text


def test_predictions_are_counted_by_version_and_class(
    client: TestClient, manifest: dict[str, Any]
) -> None:
    records = [pair["input"] for pair in manifest["golden"]]
    expected = [pair["output"]["prediction"] for pair in manifest["golden"]]
    label = expected[0]
    labels = {"model_version": manifest["version"], "class": label, "fallback": "false"}
    before = _sample("berth_predictions_total", **labels)
    assert client.post("/v1/predict", json={"records": records}).status_code == 200
    assert _sample("berth_predictions_total", **labels) == before + expected.count(label)
    # One record (counted without tallying classes first)
    assert client.post("/v1/predict", json={"records": records[:1]}).status_code == 200
    assert _sample("berth_predictions_total", **labels) == before + expected.count(label) + 1


def test_validation_failures_are_counted_by_field(
    client: TestClient, sample_record: dict[str, float]
) -> None:
    proline = _sample("berth_validation_failures_total", field="proline")
    unknown = _sample("berth_validation_failures_total", field="_unknown_feature")
    missing = {k: v for k, v in sample_record.items() if k != "proline"}
    assert client.post("/v1/predict", json={"records": [missing]}).status_code == 422
    extra = {**sample_record, "attacker-chosen-name": 1.0}
    assert client.post("/v1/predict", json={"records": [extra]}).status_code == 422
    assert _sample("berth_validation_failures_total", field="proline") == proline + 1
    assert _sample("berth_validation_failures_total", field="_unknown_feature") == unknown + 1
    assert "attacker-chosen-name" not in client.get("/metrics").text


def test_model_load_failure_is_counted(client_without_model: TestClient) -> None:
    # The fixture's worker failed to load its bundle at start.
    assert _sample("berth_model_load_failures_total") >= 1
