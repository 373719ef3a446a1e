from __future__ import annotations

import json
import logging

import pytest

from app.core.logging import EXTRAS_ATTR, JsonFormatter, TextFormatter, extras_of


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


def test_iso_timestamp_equals_datetime_isoformat() -> None:
    from datetime import datetime, timezone

    from app.core.logging import iso_timestamp

    edges = [0.0, 0.0005, 0.9999995, 0.9999994999, 0.0014999, 0.001, 0.5]
    stamps = [1_700_000_000 + whole + edge for whole in (0, 1, 59, 3600) for edge in edges]
    stamps += [1_700_000_000 + n / 1e6 for n in range(0, 3_000_000, 997)]
    for created in stamps:
        expected = datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
        assert iso_timestamp(created) == expected, created


def test_access_log_records_are_complete_log_records() -> None:
    """The access line's record (copied from a template) has every attribute ``makeRecord``
    sets, with this line's time."""
    import time

    from app.core import middleware

    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("berth.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        before = time.time()
        middleware.log_request({"request_id": "a", "status": 200})
        middleware.log_request({"request_id": "b", "status": 404})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    made = logger.makeRecord(logger.name, logging.INFO, "", 0, "request", (), None)
    assert [record.request_id for record in seen] == ["a", "b"]  # type: ignore[attr-defined]
    for record in seen:
        formatted = {"message", "asctime"}  # set by a formatter (pytest's) once handled
        extras = {"request_id", "status", EXTRAS_ATTR}  # the fields, and them as a dict
        assert set(vars(made)) | extras == set(vars(record)) - formatted
        assert extras_of(record) == {key: vars(record)[key] for key in ("request_id", "status")}
        assert record.created >= before
        assert record.msecs == int((record.created - int(record.created)) * 1000)
        assert record.process == made.process
        assert record.thread == made.thread
        assert record.getMessage() == "request"


def test_with_request_id_sets_the_header_as_mutable_headers_does() -> None:
    from starlette.datastructures import MutableHeaders

    from app.core.middleware import with_request_id

    cases: list[list[tuple[bytes, bytes]]] = [
        [],
        [(b"content-type", b"application/json")],
        [(b"x-request-id", b"old"), (b"a", b"1"), (b"x-request-id", b"older")],
        [(b"a", b"1"), (b"x-request-id", b"old")],
    ]
    for headers in cases:
        message = {"type": "http.response.start", "headers": list(headers)}
        MutableHeaders(scope=message)["x-request-id"] = "abc"
        assert with_request_id(headers, "abc") == message["headers"]
