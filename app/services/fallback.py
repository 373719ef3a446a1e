"""Fallback answers for predictions that miss their deadline or fail.

The cache holds the last model answer per record, keyed by the model version and the canonical
record (``record_keys``). ``FallbackCache`` is the interface; ``InProcessCache`` the default
(one per worker). A shared backend (e.g. Redis) only has to implement ``get_many`` and
``put_many``.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from app.services.records import Batch, value_getter

if TYPE_CHECKING:
    from app.core.config import Settings


PREFIX_BYTES = 16
# Up to this many records, keys are packed row by row; beyond, cut from one numpy buffer.
FEW_RECORDS = 8


class Answer(NamedTuple):
    """One record's answer: what the model said (or the configured default), and for a
    classifier its class probabilities: ``scores`` in the order of ``classes`` (one row of the
    model's matrix, so remembering an answer builds no dict)."""

    prediction: str | float
    scores: list[float] | None = None
    classes: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls, prediction: str | float, probabilities: Mapping[str, float] | None = None
    ) -> Answer:
        """An answer from ``{class: probability}`` (or none)."""
        if probabilities is None:
            return cls(prediction)
        return cls(prediction, list(probabilities.values()), tuple(probabilities))

    @property
    def probabilities(self) -> dict[str, float] | None:
        if self.scores is None or self.classes is None:
            return None
        return dict(zip(self.classes, self.scores, strict=True))


class DefaultAnswer(BaseModel):
    """The configured answer for records with no cached one (``BERTH_FALLBACK_DEFAULT``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prediction: str | float
    probabilities: dict[str, float] | None = None

    def answer(self) -> Answer:
        return Answer.of(self.prediction, self.probabilities)


def record_keys(model_version: str, records: Sequence[Mapping[str, float | str]]) -> list[bytes]:
    """Per record, its cache key: a 16-byte digest of the model version and the sorted feature
    names, then the values as float64 in sorted-name order. Equal inputs give equal keys,
    whatever their key order; -0.0 and 0.0 share one.

    Keys hold the values in binary form: they stay in this worker's memory, which holds the
    requests anyway. A backend that stores them elsewhere hashes them first (``RedisCache``).
    All records must have the same features (validated records do).
    """
    if not records:
        return []
    # A batch of validated records: its names are the records' keys, and it knows whether
    # every value is numeric (and may have their matrix already).
    batch = (
        records
        if isinstance(records, Batch) and records[0].keys() == _name_set(records.names)
        else None
    )
    if len(records) <= FEW_RECORDS:  # a few rows: packing each beats numpy's per-call overhead
        names = (
            _sorted_columns(batch.names)[0] if batch is not None else _sorted(tuple(records[0]))
        )
        prefix = _prefix(model_version, names)
        rows = list(map(value_getter(names), records))
        if not (batch is not None and batch.numeric) and _any_text(rows):
            return _mixed_keys(prefix, rows)
        pack = _packer(len(names))
        # + 0.0: -0.0 becomes 0.0 (the two spellings of zero share a key), an int a float.
        return [prefix + pack(*[value + 0.0 for value in row]) for row in rows]
    values = None
    order: list[int] | None = None
    if batch is not None and batch.numeric:
        names, order = _sorted_columns(batch.names)
        values = batch.columns(batch.names)
    else:
        names = _sorted(tuple(records[0]))
    prefix = _prefix(model_version, names)
    if not names:
        return [prefix] * len(records)
    if values is None:
        order = None  # the rows below are in sorted-name order already
        rows = list(map(value_getter(names), records))
        if _any_text(rows):
            return _mixed_keys(prefix, rows)
        values = np.array(rows, np.float64)
    values = values + 0.0  # -0.0 becomes 0.0, so the two spellings of zero share a key
    if order is not None:
        values = values[:, order]
    # One buffer of all keys, cut into one bytes object per record: the prefix, then the row.
    keys = np.empty((len(values), len(prefix) + 8 * len(names)), np.uint8)
    keys[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    keys[:, len(prefix) :] = np.ascontiguousarray(values, np.float64).view(np.uint8)
    data = keys.tobytes()
    width = keys.shape[1]
    return [data[start : start + width] for start in range(0, len(data), width)]


def _any_text(rows: Sequence[Sequence[object]]) -> bool:
    return any(isinstance(value, str) for row in rows for value in row)


@lru_cache(maxsize=16)
def _sorted(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(names))


@lru_cache(maxsize=16)
def _name_set(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(names)


@lru_cache(maxsize=16)  # a worker serves one model (two during a reload)
def _sorted_columns(names: tuple[str, ...]) -> tuple[tuple[str, ...], list[int] | None]:
    """``names`` sorted, and the column order that sorts a matrix in ``names`` order (None
    when it is sorted already)."""
    ordered = tuple(sorted(names))
    return ordered, None if ordered == names else [names.index(name) for name in ordered]


@lru_cache(maxsize=16)
def _packer(width: int) -> Callable[..., bytes]:
    """Packs ``width`` floats as little-endian float64, as the matrix's bytes are here."""
    return struct.Struct(f"<{width}d").pack


@lru_cache(maxsize=16)
def _prefix(model_version: str, names: tuple[str, ...]) -> bytes:
    """The first bytes of every key of this model version and these features."""
    text = "\0".join([model_version, *names]).encode("utf-8")
    return hashlib.blake2b(text, digest_size=PREFIX_BYTES).digest()


def _mixed_keys(prefix: bytes, rows: Sequence[Sequence[object]]) -> list[bytes]:
    """Keys of records with categorical (string) values: the prefix, then the row's canonical
    JSON."""
    keys = []
    for row in rows:
        canonical = [value if isinstance(value, str) else float(value) + 0.0 for value in row]  # type: ignore[arg-type]
        keys.append(prefix + json.dumps(canonical, separators=(",", ":")).encode("utf-8"))
    return keys


def record_key(model_version: str, record: Mapping[str, float | str]) -> bytes:
    """The key of one record (see ``record_keys``)."""
    return record_keys(model_version, [record])[0]


class FallbackCache(Protocol):
    """Where answers are kept for later fallbacks."""

    def get_many(self, keys: Sequence[bytes]) -> list[Answer | None]: ...

    def put_many(self, items: Sequence[tuple[bytes, Answer]]) -> None: ...


class InProcessCache:
    """A thread-safe LRU cache of at most ``max_size`` answers, local to this process."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._items: OrderedDict[bytes, Answer] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get_many(self, keys: Sequence[bytes]) -> list[Answer | None]:
        with self._lock:
            found = [self._items.get(key) for key in keys]
            for key, answer in zip(keys, found, strict=True):
                if answer is not None:
                    self._items.move_to_end(key)
            return found

    def put_many(self, items: Sequence[tuple[bytes, Answer]]) -> None:
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
