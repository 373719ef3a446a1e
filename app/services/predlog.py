"""The sampled prediction log: a JSON-lines file of some requests' inputs and answers, for audits.

Off unless ``BERTH_PREDICTION_LOG_PATH`` is set. Each predict request is written with probability
``BERTH_PREDICTION_LOG_SAMPLE_RATE``, as one line: time, request id, model version, fallback
reason, the records (feature values: this file holds input data, keep it private; it is created
0640) and the answers. The file is rotated at ``BERTH_PREDICTION_LOG_MAX_BYTES`` keeping
``BERTH_PREDICTION_LOG_BACKUPS`` old files (``path.1`` newest). Several Gunicorn workers share
the file: writes and rotation happen under an exclusive ``flock`` on ``path.lock``, and a worker
whose file was rotated away by another reopens the new one before writing.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path


class RotatingJsonLines:
    """Appends lines to ``path``, rotating it at ``max_bytes``; safe across processes."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._fd: int | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o640)

    def _open(self) -> int:
        if self._fd is not None:
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(self._fd).st_ino:
                return self._fd
            os.close(self._fd)  # another worker rotated the file away
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return self._fd

    def _rotate(self) -> None:
        for index in range(self.backups - 1, 0, -1):
            older = Path(f"{self.path}.{index}")
            if older.exists():
                older.replace(f"{self.path}.{index + 1}")
        if self.backups > 0:
            self.path.replace(f"{self.path}.1")
        else:
            self.path.unlink()

    def write(self, line: str) -> None:
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        with self._lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                fd = self._open()
                size = os.fstat(fd).st_size
                if size > 0 and size + len(data) > self.max_bytes:
                    self._rotate()
                    fd = self._open()
                os.write(fd, data)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            os.close(self._lock_fd)


class PredictionLog:
    """Writes a sample of predict requests to a ``RotatingJsonLines`` file."""

    def __init__(
        self,
        path: Path,
        sample_rate: float,
        max_bytes: int,
        backups: int,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.sample_rate = sample_rate
        self._file = RotatingJsonLines(path, max_bytes, backups)
        self._rng = rng

    def sampled(self) -> bool:
        return self.sample_rate > 0 and self._rng() < self.sample_rate

    def write(
        self,
        *,
        request_id: str | None,
        model_version: str,
        records: Sequence[Mapping[str, object]],
        predictions: Sequence[str] | Sequence[float],
        probabilities: Sequence[Mapping[str, float]] | None,
        fallback_reason: str | None,
    ) -> None:
        entry = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "model_version": model_version,
            "fallback_reason": fallback_reason,
            "records": list(records),
            "predictions": list(predictions),
            "probabilities": list(probabilities) if probabilities is not None else None,
        }
        self._file.write(json.dumps(entry, separators=(",", ":"), default=str))

    def close(self) -> None:
        self._file.close()
