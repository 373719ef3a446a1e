"""Fallback answers for predictions that miss their deadline or fail.

The cache holds the last model answer per record, keyed by a hash of the model version and the
canonical record, so neither feature values nor anything derived from them in clear ends up in a
key. ``FallbackCache`` is the interface; ``InProcessCache`` the default (one per worker). A shared
backend (e.g. Redis) only has to implement ``get_many`` and ``put_many``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from app.services.records import Batch

if TYPE_CHECKING:
    from app.core.config import Settings


class Answer(NamedTuple):
    """One record's answer: what the model said, or the configured default."""

    prediction: str | float
    probabilities: dict[str, float] | None = None


class DefaultAnswer(BaseModel):
    """The configured answer for records with no cached one (``BERTH_FALLBACK_DEFAULT``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prediction: str | float
    probabilities: dict[str, float] | None = None

    def answer(self) -> Answer:
        return Answer(self.prediction, self.probabilities)


def record_keys(model_version: str, records: Sequence[Mapping[str, float | str]]) -> list[str]:
    """Per record, the sha256 of the model version, the feature names and the values as
    float64 in sorted-name order: equal inputs give equal keys, whatever their key order.

    All records must have the same features (validated records do).
    """
    if not records:
        return []
    values = None
    if isinstance(records, Batch) and records.numeric and records[0].keys() == set(records.names):
        names, order = _sorted_columns(records.names)
        values = records.columns(records.names)
        if values is not None and order is not None:
            values = values[:, order]
    else:
        names = tuple(sorted(records[0]))
    prefix = _prefix(model_version, names)
    if not names:
        return [prefix.hexdigest()] * len(records)
    if values is None:
        rows = [[record[name] for name in names] for record in records]
        if any(isinstance(value, str) for row in rows for value in row):
            return _mixed_keys(prefix, rows)
        values = np.array(rows, np.float64)
    # + 0.0 turns -0.0 into 0.0, so the two spellings of zero share a key.
    data = (values + 0.0).tobytes()
    width = 8 * len(names)
    copy = prefix.copy
    keys = []
    for start in range(0, len(data), width):
        digest = copy()
        digest.update(data[start : start + width])
        keys.append(digest.hexdigest())
    return keys


@lru_cache(maxsize=16)  # a worker serves one model (two during a reload)
def _sorted_columns(names: tuple[str, ...]) -> tuple[tuple[str, ...], list[int] | None]:
    """``names`` sorted, and the column order that sorts a matrix in ``names`` order (None
    when it is sorted already)."""
    ordered = tuple(sorted(names))
    return ordered, None if ordered == names else [names.index(name) for name in ordered]


@lru_cache(maxsize=16)
def _prefix(model_version: str, names: tuple[str, ...]) -> Any:
    """The hash state after the key prefix; callers copy it, never update it."""
    return hashlib.sha256("\0".join([model_version, *names]).encode("utf-8"))


def _mixed_keys(prefix: Any, rows: Sequence[Sequence[object]]) -> list[str]:
    """Keys of records with categorical (string) values: canonical JSON of the row."""
    keys = []
    for row in rows:
        digest = prefix.copy()
        canonical = [value if isinstance(value, str) else float(value) + 0.0 for value in row]  # type: ignore[arg-type]
        digest.update(json.dumps(canonical, separators=(",", ":")).encode("utf-8"))
        keys.append(digest.hexdigest())
    return keys


def record_key(model_version: str, record: Mapping[str, float | str]) -> str:
    """The key of one record (see ``record_keys``)."""
    return record_keys(model_version, [record])[0]


class FallbackCache(Protocol):
    """Where answers are kept for later fallbacks."""

    def get_many(self, keys: Sequence[str]) -> list[Answer | None]: ...

    def put_many(self, items: Sequence[tuple[str, Answer]]) -> None: ...


class InProcessCache:
    """A thread-safe LRU cache of at most ``max_size`` answers, local to this process."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._items: OrderedDict[str, Answer] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get_many(self, keys: Sequence[str]) -> list[Answer | None]:
        with self._lock:
            found = [self._items.get(key) for key in keys]
            for key, answer in zip(keys, found, strict=True):
                if answer is not None:
                    self._items.move_to_end(key)
            return found

    def put_many(self, items: Sequence[tuple[str, Answer]]) -> None:
        if self.max_size == 0:
            return
        with self._lock:
            for key, answer in items:
                self._items[key] = answer
                self._items.move_to_end(key)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)


def make_cache(settings: Settings) -> FallbackCache:
    """The fallback cache the settings ask for. The Redis client (with what it imports, about
    9 MB of each worker's memory) is imported only when ``BERTH_CACHE_URL`` is set."""
    local = InProcessCache(settings.fallback_cache_size)
    if not settings.cache_url:
        return local
    from app.services.cache import RedisCache, TieredCache

    return TieredCache(local, RedisCache(settings.cache_url, settings.cache_ttl_seconds))
