"""The fallback cache and the predictor's deadline, with fake models (no timing races)."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator, Mapping, Sequence

import pytest

from app.services.fallback import (
    PREFIX_BYTES,
    Answer,
    InProcessCache,
    record_key,
    record_keys,
)
from app.services.inference import NoFallbackError, Predictor
from app.services.model_store import Prediction
from app.services.probabilities import Probabilities

RECORD = {"a": 1.0, "b": 2.5}


class FakeModel:
    """Answers ``label-<a>``; can be told to block on an event or to raise."""

    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self.release = threading.Event()
        self.release.set()
        self.error: Exception | None = None
        self.calls = 0

    def predict(self, records: Sequence[Mapping[str, float]]) -> Prediction:
        self.calls += 1
        self.release.wait()
        if self.error is not None:
            raise self.error
        return Prediction(
            predictions=[f"label-{record['a']:g}" for record in records],
            probabilities=Probabilities.of([{"x": 0.25, "y": 0.75} for _ in records]),
        )


@pytest.fixture
def model() -> Iterator[FakeModel]:
    fake = FakeModel()
    yield fake
    fake.release.set()  # never leave a pool thread blocked


def make_predictor(default: Answer | None = None, size: int = 100) -> Predictor:
    return Predictor(InProcessCache(size), budget_ms=50, threads=1, default=default)


def test_record_key_ignores_key_order_and_depends_on_version() -> None:
    assert record_key("v1", {"a": 1.0, "b": 2.0}) == record_key("v1", {"b": 2.0, "a": 1.0})
    assert record_key("v1", RECORD) != record_key("v2", RECORD)
    assert record_key("v1", RECORD) != record_key("v1", {**RECORD, "b": 2.6})


def test_record_keys_of_a_batch_match_single_keys_and_fold_negative_zero() -> None:
    records = [RECORD, {"b": 0.0, "a": -0.0}, {"a": 1.0, "b": 2.5}]
    keys = record_keys("v1", records)
    assert keys == [record_key("v1", record) for record in records]
    assert keys[0] == keys[2] != keys[1]
    assert keys[1] == record_key("v1", {"a": 0.0, "b": 0.0})
    assert record_keys("v1", []) == []


def test_record_key_depends_on_feature_names() -> None:
    assert record_key("v1", {"a": 1.0, "b": 2.0}) != record_key("v1", {"a": 1.0, "c": 2.0})


def test_record_key_is_prefix_and_float64_row() -> None:
    key = record_key("v1", {"b": 2.0, "secret_feature": 123456.789})
    assert len(key) == PREFIX_BYTES + 16
    assert key[PREFIX_BYTES:] == struct.pack("<dd", 2.0, 123456.789)  # in sorted-name order
    assert b"secret" not in key and b"v1" not in key


def test_categorical_record_keys_differ_from_numeric_ones() -> None:
    mixed = record_key("v1", {"a": "1.0"})
    numeric = record_key("v1", {"a": 1.0})
    assert mixed != numeric
    assert mixed == record_key("v1", {"a": "1.0"})


def test_cache_evicts_least_recently_used() -> None:
    cache = InProcessCache(2)
    first, second, third = (Answer(prediction=n) for n in (1.0, 2.0, 3.0))
    cache.put_many([(b"k1", first), (b"k2", second)])
    assert cache.get_many([b"k1"]) == [first]  # k1 is now the most recent
    cache.put_many([(b"k3", third)])
    assert cache.get_many([b"k1", b"k2", b"k3"]) == [first, None, third]
    assert len(cache) == 2


def test_cache_of_size_zero_keeps_nothing() -> None:
    cache = InProcessCache(0)
    cache.put_many([(b"k", Answer(prediction=1.0))])
    assert cache.get_many([b"k"]) == [None]


def test_fresh_answer_populates_cache(model: FakeModel) -> None:
    predictor = make_predictor()
    outcome = predictor.predict(model, [RECORD])
    assert outcome.fallback_reason is None
    assert outcome.predictions == ["label-1"]
    cached = predictor.cache.get_many([record_key("v1", RECORD)])
    assert cached == [Answer.of("label-1", {"x": 0.25, "y": 0.75})]


def test_timeout_answers_from_cache(model: FakeModel) -> None:
    predictor = make_predictor()
    predictor.predict(model, [RECORD])
    model.release.clear()
    outcome = predictor.predict(model, [RECORD])
    assert outcome.fallback_reason == "timeout"
    assert outcome.predictions == ["label-1"]
    assert outcome.probabilities == [{"x": 0.25, "y": 0.75}]


def test_cached_answer_is_per_model_version(model: FakeModel) -> None:
    predictor = make_predictor()
    predictor.predict(model, [RECORD])
    other = FakeModel(version="v2")
    other.release.clear()
    try:
        with pytest.raises(NoFallbackError):
            predictor.predict(other, [RECORD])
    finally:
        other.release.set()


def test_timeout_with_empty_cache_uses_default(model: FakeModel) -> None:
    predictor = make_predictor(default=Answer(prediction="unknown"))
    model.release.clear()
    outcome = predictor.predict(model, [RECORD, {"a": 2.0, "b": 0.0}])
    assert outcome.fallback_reason == "timeout"
    assert outcome.predictions == ["unknown", "unknown"]
    assert outcome.probabilities is None


def test_timeout_with_nothing_to_fall_back_on(model: FakeModel) -> None:
    predictor = make_predictor()
    model.release.clear()
    with pytest.raises(NoFallbackError) as raised:
        predictor.predict(model, [RECORD])
    assert raised.value.reason == "timeout"
    assert "latency budget" in str(raised.value)
    assert "BERTH_FALLBACK_DEFAULT" in str(raised.value)


def test_model_error_falls_back(model: FakeModel) -> None:
    predictor = make_predictor()
    predictor.predict(model, [RECORD])
    model.error = RuntimeError("onnxruntime exploded")
    outcome = predictor.predict(model, [RECORD])
    assert outcome.fallback_reason == "model_error"
    assert outcome.predictions == ["label-1"]


def test_model_error_with_nothing_to_fall_back_on(model: FakeModel) -> None:
    predictor = make_predictor()
    model.error = RuntimeError("boom")
    with pytest.raises(NoFallbackError) as raised:
        predictor.predict(model, [RECORD])
    assert raised.value.reason == "model_error"
    assert raised.value.missing == 1


def test_partial_cache_hit_uses_default_for_the_rest(model: FakeModel) -> None:
    predictor = make_predictor(default=Answer.of("unknown", {"x": 1.0}))
    predictor.predict(model, [RECORD])
    model.release.clear()
    outcome = predictor.predict(model, [RECORD, {"a": 9.0, "b": 9.0}])
    assert outcome.predictions == ["label-1", "unknown"]
    assert outcome.probabilities == [{"x": 0.25, "y": 0.75}, {"x": 1.0}]


def test_queued_work_past_its_deadline_never_runs(model: FakeModel) -> None:
    predictor = make_predictor(default=Answer(prediction="unknown"))
    model.release.clear()
    predictor.predict(model, [RECORD])  # occupies the only pool thread
    predictor.predict(model, [RECORD])  # queued behind it, times out, is cancelled
    model.release.set()
    predictor.close()
    predictor._pool.shutdown(wait=True)
    assert model.calls == 1
