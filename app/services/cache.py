"""Fallback cache in Redis, shared by every worker (and every app host pointed at it).

``app.services.fallback.make_cache`` picks the backend from the settings: the in-process LRU alone
by default, or, when ``BERTH_CACHE_URL`` is set, ``TieredCache`` from here: the worker's LRU in
front of Redis (this module and the Redis client are imported only then). Redis only ever
helps: when it is down, slow or answers garbage, the LRU keeps working, the error is logged once,
and Redis is left alone for ``retry_seconds`` before the next try, so a dead Redis costs one short
timeout per ``retry_seconds``, not one per request. It never turns into a 500.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import redis

from app.services.fallback import Answer, InProcessCache

log = logging.getLogger("berth.cache")

KEY_PREFIX = "berth:fallback:"


def redis_key(key: bytes) -> str:
    """The Redis name of a record key: its sha256, so no feature value leaves the process."""
    return KEY_PREFIX + hashlib.sha256(key).hexdigest()


def encode(answer: Answer) -> bytes:
    return json.dumps(list(answer), separators=(",", ":")).encode()


def decode(raw: bytes) -> Answer | None:
    """The answer stored in ``raw`` (``[prediction, scores, classes]``), or None if it is not
    one (never raises)."""
    try:
        stored = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(stored, list) or len(stored) != 3:
        return None
    prediction, scores, classes = stored
    if not isinstance(prediction, str | int | float) or isinstance(prediction, bool):
        return None
    if scores is None and classes is None:
        return Answer(prediction)
    if (
        isinstance(scores, list)
        and isinstance(classes, list)
        and len(scores) == len(classes)
        and _numbers(scores)
        and all(isinstance(name, str) for name in classes)
    ):
        return Answer(prediction, scores, tuple(classes))
    return None


def _numbers(values: Iterable[object]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


class RedisCache:
    """Answers in Redis under ``berth:fallback:<sha256 of the record key>``, expiring after
    ``ttl_seconds``."""

    def __init__(
        self,
        url: str,
        ttl_seconds: int,
        timeout_seconds: float = 0.05,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False,
        )
        self._down_until: float | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """False while Redis is being left alone after an error."""
        return self._down_until is None or self._clock() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = self._clock() + self.retry_seconds
        if first:
            log.warning(
                "redis fallback cache unavailable; using the in-process cache only",
                extra={
                    "error": f"{type(exc).__name__}: {exc}",
                    "retry_seconds": self.retry_seconds,
                },
            )

    def _recovered(self) -> None:
        if self._down_until is not None:
            with self._lock:
                self._down_until = None
            log.info("redis fallback cache available again")

    def get_many(self, keys: Sequence[bytes]) -> list[Answer | None]:
        if not keys or not self.available:
            return [None] * len(keys)
        try:
            raw = self._client.mget([redis_key(key) for key in keys])
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return [None] * len(keys)
        self._recovered()
        return [decode(value) if isinstance(value, bytes) else None for value in raw]

    def put_many(self, items: Sequence[tuple[bytes, Answer]]) -> None:
        if not items or not self.available:
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key, answer in items:
                    pipe.set(redis_key(key), encode(answer), ex=self.ttl_seconds)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._recovered()

    def close(self) -> None:
        self._client.close()


class TieredCache:
    """The worker's own LRU first, then the shared cache; writes go to both."""

    def __init__(self, local: InProcessCache, shared: RedisCache) -> None:
        self.local = local
        self.shared = shared

    def get_many(self, keys: Sequence[bytes]) -> list[Answer | None]:
        found = self.local.get_many(keys)
        missing = [i for i, answer in enumerate(found) if answer is None]
        if missing:
            remote = self.shared.get_many([keys[i] for i in missing])
            for i, answer in zip(missing, remote, strict=True):
                found[i] = answer
        return found

    def put_many(self, items: Sequence[tuple[bytes, Answer]]) -> None:
        self.local.put_many(items)
        self.shared.put_many(items)
