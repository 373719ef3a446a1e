"""Fallback through the API: a real bundle whose model is made slow or failing on purpose."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from app.core.config import Settings
from app.main import create_app
from app.services.fallback import DefaultAnswer
from app.services.model_store import ModelStore, Prediction


class Sabotage:
    """Wraps a loaded model's ``predict``: pass through, block on an event, or raise."""

    def __init__(self, store: ModelStore) -> None:
        assert store.model is not None
        self.real = store.model.predict
        self.release = threading.Event()
        self.release.set()
        self.error: Exception | None = None

    def __call__(self, records: Sequence[Mapping[str, float]]) -> Prediction:
        self.release.wait()
        if self.error is not None:
            raise self.error
        return self.real(records)


def sabotaged_client(
    bundle_dir: Path, default: DefaultAnswer | None = None
) -> Iterator[tuple[TestClient, Sabotage]]:
    settings = Settings(model_dir=bundle_dir, latency_budget_ms=50, fallback_default=default)
    store = ModelStore(bundle_dir)
    store.load()
    sabotage = Sabotage(store)
    assert store.model is not None
    store.model.predict = sabotage  # type: ignore[method-assign]
    try:
        with TestClient(create_app(settings, store)) as client:
            yield client, sabotage
    finally:
        sabotage.release.set()


@pytest.fixture
def slow(bundle_dir: Path) -> Iterator[tuple[TestClient, Sabotage]]:
    yield from sabotaged_client(bundle_dir)


@pytest.fixture
def slow_with_default(bundle_dir: Path) -> Iterator[tuple[TestClient, Sabotage]]:
    yield from sabotaged_client(bundle_dir, DefaultAnswer(prediction="class_1"))


def _predict(client: TestClient, record: dict[str, float]) -> Any:
    return client.post("/v1/predict?probabilities=true", json={"records": [record]})


def test_timeout_answers_the_cached_answer(
    slow: tuple[TestClient, Sabotage], sample_record: dict[str, float]
) -> None:
    client, sabotage = slow
    fresh = _predict(client, sample_record)
    assert fresh.status_code == 200
    assert fresh.json()["fallback"] is False
    assert fresh.json()["fallback_reason"] is None
    sabotage.release.clear()
    late = _predict(client, sample_record)
    assert late.status_code == 200
    body = late.json()
    assert body["fallback"] is True
    assert body["fallback_reason"] == "timeout"
    assert body["predictions"] == fresh.json()["predictions"]
    assert body["probabilities"] == fresh.json()["probabilities"]
    assert body["model_version"] == fresh.json()["model_version"]


def test_timeout_with_empty_cache_is_503(
    slow: tuple[TestClient, Sabotage], sample_record: dict[str, float]
) -> None:
    client, sabotage = slow
    sabotage.release.clear()
    response = _predict(client, sample_record)
    assert response.status_code == 503
    assert "latency budget" in response.json()["detail"]


def test_timeout_with_empty_cache_uses_default(
    slow_with_default: tuple[TestClient, Sabotage], sample_record: dict[str, float]
) -> None:
    client, sabotage = slow_with_default
    sabotage.release.clear()
    response = _predict(client, sample_record)
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == ["class_1"]
    assert body["probabilities"] is None
    assert (body["fallback"], body["fallback_reason"]) == (True, "timeout")


def test_model_error_falls_back_to_cache(
    slow: tuple[TestClient, Sabotage], sample_record: dict[str, float]
) -> None:
    client, sabotage = slow
    fresh = _predict(client, sample_record)
    sabotage.error = RuntimeError("model broke")
    response = _predict(client, sample_record)
    assert response.status_code == 200
    body = response.json()
    assert (body["fallback"], body["fallback_reason"]) == (True, "model_error")
    assert body["predictions"] == fresh.json()["predictions"]


def test_model_error_without_fallback_is_503(
    slow: tuple[TestClient, Sabotage], sample_record: dict[str, float]
) -> None:
    client, sabotage = slow
    sabotage.error = RuntimeError("model broke")
    response = _predict(client, sample_record)
    assert response.status_code == 503
    assert "failed" in response.json()["detail"]


def test_fallbacks_are_counted_by_reason(
    slow_with_default: tuple[TestClient, Sabotage], sample_record: dict[str, float]
) -> None:
    client, sabotage = slow_with_default
    before = REGISTRY.get_sample_value("berth_fallbacks_total", {"reason": "model_error"}) or 0
    sabotage.error = RuntimeError("model broke")
    assert _predict(client, sample_record).json()["fallback"] is True
    after = REGISTRY.get_sample_value("berth_fallbacks_total", {"reason": "model_error"})
    assert after == before + 1


def test_unavailable_fallbacks_are_counted(
    slow: tuple[TestClient, Sabotage], sample_record: dict[str, float]
) -> None:
    client, sabotage = slow
    labels = {"reason": "timeout"}
    before = REGISTRY.get_sample_value("berth_fallback_unavailable_total", labels) or 0
    sabotage.release.clear()
    assert _predict(client, sample_record).status_code == 503
    assert REGISTRY.get_sample_value("berth_fallback_unavailable_total", labels) == before + 1
