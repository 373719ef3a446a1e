"""Logging setup: JSON lines on servers, plain text for people.

Records carry context through ``extra=`` (request_id, route, status, latency_ms, ...). Feature
values are never passed to a log call.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import Any

from pydantic_core import to_json

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key[:1] != "_":
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        # pydantic-core's encoder: compact, UTF-8, several times faster than json.dumps; what
        # it cannot encode is written as str(value), like json.dumps(default=str).
        return to_json(entry, fallback=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        )
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(level: str, fmt: str) -> None:
    """Send the ``berth`` loggers to stderr in ``fmt`` ('json' or 'text') at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger = logging.getLogger("berth")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
