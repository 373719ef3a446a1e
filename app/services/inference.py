"""Predictions under a latency budget, with fallback answers.

Inference runs in a small bounded thread pool, never on the event loop. If the model does not
answer within the budget, or raises, each record's answer comes from the fallback cache (the last
model answer for the same record and model version), else from the configured default answer.
When some record has neither, ``NoFallbackError`` says why and the route answers 503.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from itertools import repeat
from typing import Literal, Protocol, cast

from app.services.coalescing import Coalescer
from app.services.fallback import Answer, FallbackCache, record_keys
from app.services.manifest import Manifest
from app.services.model_store import Prediction
from app.services.observation import Observer

log = logging.getLogger("berth.inference")

FallbackReason = Literal["timeout", "model_error"]


class Model(Protocol):
    """What the predictor needs from a loaded model."""

    @property
    def version(self) -> str: ...

    @property
    def manifest(self) -> Manifest: ...

    def predict(self, records: Sequence[Mapping[str, float]]) -> Prediction: ...


@dataclass(frozen=True)
class Outcome:
    predictions: list[str] | list[float]
    probabilities: Sequence[dict[str, float]] | None
    fallback_reason: FallbackReason | None = None


class NoFallbackError(Exception):
    """The model gave no answer in time and there is nothing to fall back on."""

    def __init__(self, reason: FallbackReason, missing: int) -> None:
        self.reason = reason
        self.missing = missing
        what = "did not answer within the latency budget" if reason == "timeout" else "failed"
        super().__init__(
            f"the model {what} and {missing} record(s) have no cached answer and no default "
            "answer is configured (BERTH_FALLBACK_DEFAULT); retry later"
        )


class Predictor:
    """Runs ``model.predict`` in a bounded pool within ``budget_ms``; falls back otherwise."""

    def __init__(
        self,
        cache: FallbackCache,
        budget_ms: float,
        threads: int,
        default: Answer | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.cache = cache
        self.observer = observer
        self.budget_s = budget_ms / 1000
        self.default = default
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="berth-infer")
        # A spare thread takes queued requests once a call has run for a tenth of the budget.
        self._coalescer = Coalescer(
            self._pool, threads, spare_after=min(0.005, self.budget_s / 10)
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def predict(self, model: Model, records: Sequence[Mapping[str, float]]) -> Outcome:
        """Blocking form, for callers in a thread: waits on the pool's future."""
        outcome = self._predict(model, records)
        self._observe(model, records, outcome)
        return outcome

    async def predict_async(self, model: Model, records: Sequence[Mapping[str, float]]) -> Outcome:
        """For the event loop: awaits the pool's answer, so no request thread is tied up.
        Concurrent requests share pool handoffs and model calls (``Coalescer``)."""
        deadline = time.monotonic() + self.budget_s
        keys = record_keys(model.version, records)
        try:
            result = _complete(await self._coalescer.predict(model, records, deadline), keys)
        except TimeoutError:  # a request still queued at its deadline is never run
            outcome = self._fallback(keys, "timeout")
        except Exception:
            log.exception("model error", extra={"model_version": model.version})
            outcome = self._fallback(keys, "model_error")
        else:
            self._remember(keys, result)
            outcome = Outcome(result.predictions, result.probabilities)
        self._observe(model, records, outcome)
        return outcome

    def _observe(
        self, model: Model, records: Sequence[Mapping[str, float]], outcome: Outcome
    ) -> None:
        if self.observer is not None:
            self.observer.observe(
                model.manifest,
                records,
                outcome.predictions,
                outcome.probabilities,
                outcome.fallback_reason,
            )

    def _predict(self, model: Model, records: Sequence[Mapping[str, float]]) -> Outcome:
        deadline = time.monotonic() + self.budget_s
        keys = record_keys(model.version, records)
        future: Future[Prediction] = self._pool.submit(model.predict, records)
        try:
            result = _complete(future.result(timeout=max(0.0, deadline - time.monotonic())), keys)
        except FutureTimeoutError:
            future.cancel()  # still queued: never run it; already running: let it finish
            return self._fallback(keys, "timeout")
        except Exception:
            log.exception("model error", extra={"model_version": model.version})
            return self._fallback(keys, "model_error")
        self._remember(keys, result)
        return Outcome(result.predictions, result.probabilities)

    def _remember(self, keys: Sequence[bytes], result: Prediction) -> None:
        predictions, probabilities = result.predictions, result.probabilities
        answers: Iterable[Answer]
        if probabilities is None:
            answers = map(Answer, predictions)
        else:  # rows as the model gave them: no dict per record
            answers = map(Answer, predictions, probabilities.rows, repeat(probabilities.classes))
        self.cache.put_many(list(zip(keys, answers, strict=True)))

    def _fallback(self, keys: Sequence[bytes], reason: FallbackReason) -> Outcome:
        answers = [cached or self.default for cached in self.cache.get_many(keys)]
        found = [answer for answer in answers if answer is not None]
        if len(found) < len(answers):
            raise NoFallbackError(reason, len(answers) - len(found))
        probabilities = [answer.probabilities for answer in found]
        complete = [p for p in probabilities if p is not None]
        return Outcome(
            predictions=cast(list[str] | list[float], [answer.prediction for answer in found]),
            # A default answer without probabilities leaves the whole response without them.
            probabilities=complete if len(complete) == len(found) else None,
            fallback_reason=reason,
        )


def _complete(result: Prediction, keys: Sequence[bytes]) -> Prediction:
    """``result`` if it answers every record (and gives probabilities for all or none); a model
    that does not is a failing model (``ValueError``, answered by the fallback)."""
    count = len(keys)
    if len(result.predictions) != count or (
        result.probabilities is not None and len(result.probabilities) != count
    ):
        raise ValueError(f"the model answered {len(result.predictions)} of {count} records")
    return result
