from __future__ import annotations

import json
import logging

from app.core.logging import JsonFormatter, TextFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("berth.access", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__.update(extra)
    return record


def test_json_formatter_writes_one_object_with_extras() -> None:
    line = JsonFormatter().format(_record(request_id="abc", status=200, latency_ms=1.5))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "INFO"
    assert entry["logger"] == "berth.access"
    assert entry["message"] == "request"
    assert (entry["request_id"], entry["status"], entry["latency_ms"]) == ("abc", 200, 1.5)
    assert "args" not in entry and "msg" not in entry


def test_text_formatter_appends_extras() -> None:
    line = TextFormatter().format(_record(request_id="abc"))
    assert line.endswith("INFO berth.access: request request_id=abc")


def test_json_formatter_writes_other_types_as_text_and_keeps_unicode() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    line = JsonFormatter().format(_record(thing=Opaque(), name_="café", ratio=float("nan")))
    assert "café" in line
    entry = json.loads(line)
    assert entry["thing"] == "opaque!"
    assert entry["name_"] == "café"
