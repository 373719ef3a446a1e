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
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    """One record's answer: what the model said, or the configured default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prediction: str | float
    probabilities: dict[str, float] | None = None


def record_key(model_version: str, record: Mapping[str, float]) -> str:
    """sha256 of the model version and the record with sorted keys: equal inputs, equal keys."""
    canonical = json.dumps(
        [model_version, sorted(record.items())], separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
