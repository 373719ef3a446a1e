"""Logging setup: JSON lines on servers, plain text for people.

Records carry context through ``extra=`` (request_id, route, status, latency_ms, ...). Feature
values are never passed to a log call.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from pydantic_core import to_json

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def iso_timestamp(created: float) -> str:
    """``datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")``,
    with the part up to the second formatted once per second."""
    if created < 0:  # never for a log record; datetime's rounding below zero differs
        return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
    seconds = int(created)
    # As datetime rounds a timestamp to microseconds: half to even, carrying into the second.
    micros = round((created - seconds) * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    if seconds != _second[0]:
        _second[:] = [seconds, datetime.fromtimestamp(seconds, timezone.utc).strftime(_SECOND)]
    return f"{_second[1]}.{micros // 1000:03d}+00:00"


_SECOND = "%Y-%m-%dT%H:%M:%S"
_second: list[Any] = [None, ""]


# A record made with its extras known (the access log: ``app.core.middleware.log_request``)
# carries them under this attribute, so formatting needs no scan of the record's attributes.
EXTRAS_ATTR = "_berth_extras"


def extras_of(record: logging.LogRecord) -> dict[str, Any]:
    """What was passed with ``extra=``: the attributes a plain ``LogRecord`` does not have."""
    known: dict[str, Any] | None = record.__dict__.get(EXTRAS_ATTR)
    if known is not None:
        return known
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRS and key[:1] != "_"
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(extras_of(record))
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        # pydantic-core's encoder: compact, UTF-8, several times faster than json.dumps; what
        # it cannot encode is written as str(value), like json.dumps(default=str).
        return to_json(entry, fallback=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{key}={value}" for key, value in extras_of(record).items())
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines in batches instead of one write per line: a line waits at most
    ``flush_seconds`` (a background thread writes what is pending), ``capacity`` lines are
    written at once, and a WARNING or worse is written at once together with every line before
    it, in order. What is pending is written at exit (``logging.shutdown``) and on ``flush``.

    Each write is a system call, and in a worker it also hands the GIL to the inference
    threads and back: per line that cost more than formatting it.
    """

    def __init__(self, stream: Any, flush_seconds: float, capacity: int = 256) -> None:
        super().__init__(stream)
        self.flush_seconds = flush_seconds
        self.capacity = capacity
        self._lines: list[str] = []
        self._pending = threading.Event()
        self._flusher: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            self._lines.append(self.format(record))
            if record.levelno >= logging.WARNING or len(self._lines) >= self.capacity:
                self._write()
        except Exception:  # as StreamHandler: report, never raise into the caller
            self.handleError(record)
            return
        if len(self._lines) == 1:
            if self._flusher is None or not self._flusher.is_alive():  # also after a fork
                self._flusher = threading.Thread(
                    target=self._flush_pending, name="berth-log-flush", daemon=True
                )
                self._flusher.start()
            self._pending.set()

    def _write(self) -> None:
        if self._lines:
            text = "\n".join(self._lines) + self.terminator
            self._lines.clear()  # written or not: a broken stream must not grow the buffer
            self.stream.write(text)
            self.stream.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def _flush_pending(self) -> None:
        while True:
            self._pending.wait()
            time.sleep(self.flush_seconds)
            self._pending.clear()
            try:
                self.flush()
            except Exception:  # the stream failed: these lines are lost, later ones not
                continue


def configure_logging(level: str, fmt: str, flush_seconds: float = 0.0) -> None:
    """Send the ``berth`` loggers to stderr in ``fmt`` ('json' or 'text') at ``level``; with
    ``flush_seconds`` lines are written in batches at most that late (``BufferedStreamHandler``).
    """
    handler: logging.Handler = (
        BufferedStreamHandler(sys.stderr, flush_seconds)
        if flush_seconds > 0
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger = logging.getLogger("berth")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
