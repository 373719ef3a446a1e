"""The Redis fallback cache against a real redis-server on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.services.cache import KEY_PREFIX, RedisCache, TieredCache, redis_key
from app.services.fallback import Answer, InProcessCache, make_cache, record_key
from app.services.model_store import ModelStore
from tests.api.test_fallback import Sabotage
from tests.redis_server import RedisServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    running = RedisServer(tmp_path / "redis").start()
    yield running
    running.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


ANSWER = Answer.of("class_0", {"class_0": 0.9, "class_1": 0.1})


def test_answers_round_trip_with_ttl(server: RedisServer) -> None:
    cache = RedisCache(server.url, ttl_seconds=120)
    cache.put_many([(b"k1", ANSWER), (b"k2", Answer(1.5))])
    assert cache.get_many([b"k1", b"nope", b"k2"]) == [ANSWER, None, Answer(1.5)]
    ttl = server.client().ttl(redis_key(b"k1"))
    assert 0 < ttl <= 120


def test_garbage_values_are_misses(server: RedisServer) -> None:
    client = server.client()
    for key, value in [(b"a", b"not json"), (b"b", b"[true, null]"), (b"c", b'["x", {"p": "y"}]')]:
        client.set(redis_key(key), value)
    assert RedisCache(server.url, 60).get_many([b"a", b"b", b"c"]) == [None, None, None]


def test_redis_down_degrades_and_recovers(server: RedisServer) -> None:
    clock = Clock()
    cache = RedisCache(server.url, 60, retry_seconds=5, clock=clock)
    cache.put_many([(b"k", ANSWER)])
    server.stop()
    assert cache.get_many([b"k"]) == [None]
    assert not cache.available
    started = time.perf_counter()
    cache.put_many([(b"k2", ANSWER)])  # left alone: no connection attempt, no wait
    assert cache.get_many([b"k"]) == [None]
    assert time.perf_counter() - started < 0.01
    server.start()  # same port; no persistence, so "k" is gone
    assert cache.get_many([b"k"]) == [None]  # still within retry_seconds
    clock.now += 5
    assert cache.available
    cache.put_many([(b"k", ANSWER)])
    assert cache.get_many([b"k"]) == [ANSWER]


def test_tiered_cache_survives_redis_down(server: RedisServer) -> None:
    tiered = TieredCache(InProcessCache(10), RedisCache(server.url, 60))
    server.stop()
    tiered.put_many([(b"k", ANSWER)])
    assert tiered.get_many([b"k", b"x"]) == [ANSWER, None]


def test_redis_key_names_hold_no_feature_value(server: RedisServer) -> None:
    key = record_key("v1", {"secret_feature": 123456.789})
    RedisCache(server.url, 60).put_many([(key, ANSWER)])
    (name,) = server.client().keys("*")
    assert name.decode() == redis_key(key)
    digest = name.decode().removeprefix(KEY_PREFIX)
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")


def test_make_cache_follows_settings(server: RedisServer) -> None:
    assert isinstance(make_cache(Settings()), InProcessCache)
    assert isinstance(make_cache(Settings(cache_url=server.url)), TieredCache)


def _worker(bundle_dir: Path, url: str) -> tuple[TestClient, Sabotage]:
    store = ModelStore(bundle_dir)
    store.load()
    sabotage = Sabotage(store)
    assert store.model is not None
    store.model.predict = sabotage  # type: ignore[method-assign]
    settings = Settings(model_dir=bundle_dir, latency_budget_ms=200, cache_url=url)
    return TestClient(create_app(settings, store)), sabotage


def test_workers_share_answers_through_redis(
    server: RedisServer, bundle_dir: Path, sample_record: dict[str, float]
) -> None:
    """Worker A answered a record; worker B's model fails: B falls back on A's answer."""
    a, _ = _worker(bundle_dir, server.url)
    b, broken = _worker(bundle_dir, server.url)
    broken.error = RuntimeError("model broke")
    with a, b:
        fresh = a.post("/v1/predict?probabilities=true", json={"records": [sample_record]})
        assert fresh.status_code == 200 and fresh.json()["fallback"] is False
        late = b.post("/v1/predict?probabilities=true", json={"records": [sample_record]})
        assert late.status_code == 200
        body = late.json()
        assert (body["fallback"], body["fallback_reason"]) == (True, "model_error")
        assert body["predictions"] == fresh.json()["predictions"]
        assert body["probabilities"] == fresh.json()["probabilities"]


def test_redis_down_never_500(
    server: RedisServer, bundle_dir: Path, sample_record: dict[str, float]
) -> None:
    client, sabotage = _worker(bundle_dir, server.url)
    with client:
        server.stop()
        fresh = client.post("/v1/predict", json={"records": [sample_record]})
        assert fresh.status_code == 200 and fresh.json()["fallback"] is False
        sabotage.error = RuntimeError("model broke")
        cached = client.post("/v1/predict", json={"records": [sample_record]})
        assert cached.status_code == 200  # from the worker's own LRU
        assert cached.json()["fallback"] is True
        other = client.post("/v1/predict", json={"records": [{**sample_record, "hue": 1.0}]})
        assert other.status_code == 503  # nothing anywhere to fall back on: 503, not 500
