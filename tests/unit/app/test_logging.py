from __future__ import annotations

import json
import logging

import pytest

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


def test_buffered_handler_batches_lines_and_writes_warnings_at_once() -> None:
    import io
    import time

    from app.core.logging import BufferedStreamHandler

    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, flush_seconds=0.05, capacity=3)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("berth.test-buffered")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("one")
        assert stream.getvalue() == ""  # pending
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue().endswith("one\n")  # written by the flusher, soon
        logger.info("two")
        logger.warning("three")  # at once, after the line before it
        lines = stream.getvalue().splitlines()
        assert [line.rsplit(" ", 1)[-1] for line in lines] == ["one", "two", "three"]
        for word in ("a", "b", "c"):  # capacity 3: written at the third
            logger.info(word)
        assert stream.getvalue().splitlines()[-1].endswith(" c")
        logger.info("last")
        handler.flush()
        assert stream.getvalue().endswith("last\n")
    finally:
        logger.handlers[:] = []


def test_buffered_handler_never_raises_into_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from app.core.logging import BufferedStreamHandler

    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, flush_seconds=60)
    handler.setFormatter(TextFormatter())
    stream.close()
    monkeypatch.setattr(logging, "raiseExceptions", False)  # handleError stays silent
    handler.handle(_record(level="x"))  # buffered
    handler.handle(logging.LogRecord("berth", logging.ERROR, __file__, 1, "boom", None, None))
    assert handler._lines == []  # dropped, not kept growing
