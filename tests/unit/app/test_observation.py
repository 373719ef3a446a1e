"""Observation through the real app: score histogram, drift gauges, model gauges, access log
and the sampled prediction log (this process's default registry; multiprocess in
test_metrics_multiprocess.py)."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, Histogram

from app.core import metrics
from app.core.config import Settings
from app.core.logging import JsonFormatter
from app.main import create_app
from app.services.drift import psi
from app.services.model_store import read_manifest
from app.services.observation import Observer
from tests.unit.app.reference_bundle import BINS, add_reference

WINDOW = 10


@pytest.fixture(scope="module")
def reference_bundle(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return add_reference(bundle_dir, tmp_path_factory.mktemp("ref") / "bundle")


@pytest.fixture(scope="module")
def manifest(reference_bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reference_bundle / "manifest.json").read_text())
    return data


def make_client(reference_bundle: Path, tmp_path: Path, **settings: Any) -> TestClient:
    return TestClient(
        create_app(
            Settings(
                model_dir=reference_bundle,
                drift_window=WINDOW,
                drift_interval_seconds=0,
                log_level="INFO",
                **settings,
            )
        )
    )


@pytest.fixture
def client(reference_bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(reference_bundle, tmp_path) as client:
        yield client


def value(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def test_model_gauges_describe_the_loaded_model(
    client: TestClient, manifest: dict[str, Any]
) -> None:
    from datetime import datetime

    assert value("berth_model_info", name=manifest["name"], version=manifest["version"]) == 1
    created = datetime.fromisoformat(manifest["created_at"]).timestamp()
    assert value("berth_model_created_timestamp_seconds") == created
    assert value("berth_model_ready") == 1
    assert "berth_model_info{" in client.get("/metrics").text


def test_drift_gauges_follow_the_window(client: TestClient, manifest: dict[str, Any]) -> None:
    record = manifest["golden"][0]["input"]
    expected_class = manifest["golden"][0]["output"]["prediction"]
    classes = manifest["output"]["classes"]
    response = client.post("/v1/predict", json={"records": [record] * WINDOW})
    assert response.status_code == 200
    for feature in manifest["features"]:
        low, high = feature["min"], feature["max"]
        edges = [low + i * (high - low) / BINS for i in range(1, BINS)]
        bin_index = sum(record[feature["name"]] >= edge for edge in edges)
        counts = [0] * BINS
        counts[bin_index] = WINDOW
        got = value("berth_feature_psi", feature=feature["name"])
        assert got == pytest.approx(psi([25] * BINS, counts)), feature["name"]
    predicted = [0] * (len(classes) + 1)
    predicted[classes.index(expected_class)] = WINDOW
    assert value("berth_prediction_psi") == pytest.approx(
        psi([10] * len(classes) + [0], predicted)
    )
    assert value("berth_drift_window_records") == WINDOW
    text = client.get("/metrics").text
    assert 'berth_feature_psi{feature="alcohol"}' in text


def test_prediction_scores_are_observed(client: TestClient, manifest: dict[str, Any]) -> None:
    records = [pair["input"] for pair in manifest["golden"]]
    top = [max(pair["output"]["probabilities"].values()) for pair in manifest["golden"]]
    count = value("berth_prediction_score_count") or 0
    total = value("berth_prediction_score_sum") or 0
    above_09 = value("berth_prediction_score_bucket", le="0.9") or 0
    assert client.post("/v1/predict", json={"records": records}).status_code == 200
    assert value("berth_prediction_score_count") == count + len(records)
    assert value("berth_prediction_score_sum") == pytest.approx(total + sum(top), abs=1e-5)
    assert value("berth_prediction_score_bucket", le="0.9") == above_09 + sum(
        p <= 0.9 for p in top
    )


def test_observe_many_equals_observe_one_by_one() -> None:
    values = [0.0, 0.05, 0.1, 0.1000001, 0.5, 0.95, 0.99, 1.0, 1.5, 7.0, -1.0]
    one = Histogram("t_one", "one by one", buckets=metrics.SCORE_BUCKETS, registry=None)
    many = Histogram("t_many", "in one pass", buckets=metrics.SCORE_BUCKETS, registry=None)
    for v in values:
        one.observe(v)
    metrics.observe_many(many, values)
    metrics.observe_many(many, [])
    one.observe(0.3)
    metrics.observe_many(many, [0.3])  # the small-batch path
    one_samples = {
        (s.name[5:], s.labels.get("le")): s.value for s in next(iter(one.collect())).samples
    }
    many_samples = {
        (s.name[6:], s.labels.get("le")): s.value for s in next(iter(many.collect())).samples
    }
    del one_samples[("_created", None)], many_samples[("_created", None)]
    assert many_samples == pytest.approx(one_samples)
    assert many_samples[("_bucket", "0.1")] == 4  # -1, 0, 0.05 and 0.1 itself
    assert many_samples[("_count", None)] == len(values) + 1


def test_access_log_has_model_version_and_no_feature_values(
    client: TestClient, manifest: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    record = manifest["golden"][0]["input"]
    logger = logging.getLogger("berth.access")
    logger.addHandler(caplog.handler)
    try:
        response = client.post(
            "/v1/predict", json={"records": [record]}, headers={"x-request-id": "audit-1"}
        )
    finally:
        logger.removeHandler(caplog.handler)
    assert response.status_code == 200
    line = next(JsonFormatter().format(r) for r in caplog.records if r.name == "berth.access")
    entry = json.loads(line)
    assert entry["request_id"] == "audit-1"
    assert entry["model_version"] == manifest["version"]
    assert entry["status"] == 200 and entry["latency_ms"] > 0
    # The clock fields can spell a value by chance (ts "...:41.049" holds "1.04"): leave them out.
    rest = json.dumps({k: v for k, v in entry.items() if k not in ("ts", "latency_ms")})
    for feature, number in record.items():
        assert feature not in line
        assert str(number) not in rest


def test_prediction_log_samples_requests(
    reference_bundle: Path, tmp_path: Path, manifest: dict[str, Any]
) -> None:
    record = manifest["golden"][0]["input"]
    path = tmp_path / "log" / "predictions.jsonl"
    with make_client(
        reference_bundle, tmp_path, prediction_log_path=path, prediction_log_sample_rate=1
    ) as client:
        for i in range(3):
            response = client.post(
                "/v1/predict?probabilities=true",
                json={"records": [record]},
                headers={"x-request-id": f"req-{i}"},
            )
            assert response.status_code == 200
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["request_id"] for line in lines] == ["req-0", "req-1", "req-2"]
    assert lines[0]["records"] == [record]
    assert lines[0]["model_version"] == manifest["version"]
    assert lines[0]["predictions"] == response.json()["predictions"]
    assert lines[0]["probabilities"] == response.json()["probabilities"]
    assert lines[0]["fallback_reason"] is None
    assert path.stat().st_mode & 0o777 == 0o640


def test_prediction_log_off_by_default_and_at_rate_zero(
    reference_bundle: Path, tmp_path: Path, manifest: dict[str, Any]
) -> None:
    record = manifest["golden"][0]["input"]
    path = tmp_path / "predictions.jsonl"
    with make_client(
        reference_bundle, tmp_path, prediction_log_path=path, prediction_log_sample_rate=0
    ) as client:
        assert client.post("/v1/predict", json={"records": [record]}).status_code == 200
    assert not path.exists() or path.read_text() == ""
    assert Settings().prediction_log_path is None


def test_observability_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BERTH_DRIFT_WINDOW", "500")
    monkeypatch.setenv("BERTH_DRIFT_INTERVAL_SECONDS", "2.5")
    monkeypatch.setenv("BERTH_PREDICTION_LOG_PATH", str(tmp_path / "p.jsonl"))
    monkeypatch.setenv("BERTH_PREDICTION_LOG_SAMPLE_RATE", "0.25")
    settings = Settings()
    assert (settings.drift_window, settings.drift_interval_seconds) == (500, 2.5)
    assert settings.prediction_log_path == tmp_path / "p.jsonl"
    assert settings.prediction_log_sample_rate == 0.25
    monkeypatch.setenv("BERTH_PREDICTION_LOG_SAMPLE_RATE", "2")
    with pytest.raises(ValueError, match="prediction_log_sample_rate"):
        Settings()


def test_a_bundle_without_reference_serves_without_drift(bundle_dir: Path, tmp_path: Path) -> None:
    # Bundles written before the reference existed: drop it (it is not part of the version).
    bundle_dir = Path(shutil.copytree(bundle_dir, tmp_path / "plain"))
    manifest_file = bundle_dir / "manifest.json"
    data = json.loads(manifest_file.read_text())
    data.pop("reference", None)
    manifest_file.write_text(json.dumps(data))
    plain = read_manifest(bundle_dir)
    assert plain.reference is None
    observer = Observer(drift_window=10, drift_interval_seconds=0)
    assert observer.monitor(plain) is None
    record = plain.golden[0].input
    with TestClient(create_app(Settings(model_dir=bundle_dir, drift_interval_seconds=0))) as c:
        assert c.post("/v1/predict", json={"records": [record] * 20}).status_code == 200


def test_a_failing_observation_never_costs_the_answer(
    reference_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = read_manifest(reference_bundle)
    observer = Observer(drift_window=10, drift_interval_seconds=0)
    logger = logging.getLogger("berth.observation")
    logger.addHandler(caplog.handler)
    try:  # records without the features the reference knows
        for _ in range(3):
            observer.observe(manifest, [{"nope": 1.0}], ["class_0"], None, None)
    finally:
        logger.removeHandler(caplog.handler)
    failures = {r.created for r in caplog.records if "prediction failed" in r.getMessage()}
    assert len(failures) == 1  # logged once, not once per request
