from __future__ import annotations

import hashlib
import logging
import re

import pytest

from app.keys import main
from app.services.auth import parse_key_file


def test_parse_key_file_scopes_and_comments() -> None:
    h1, h2 = "a" * 64, "b" * 64
    entries = parse_key_file(f"# header\n\none {h1}\ntwo {h2} predict # why\n")
    assert entries[h1].name == "one"
    assert entries[h1].scopes == {"predict", "model"}
    assert entries[h2].scopes == {"predict"}


@pytest.mark.parametrize(
    "line",
    ["one", "one abc", f"one {'A' * 64}", f"-x {'a' * 64}", f"one {'a' * 64} admin", "a b c d"],
)
def test_parse_key_file_skips_bad_lines(line: str) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign,assignment]
    logger = logging.getLogger("berth.auth")
    logger.addHandler(handler)
    try:
        assert parse_key_file(line) == {}
    finally:
        logger.removeHandler(handler)
    [record] = records
    assert record.getMessage().startswith("api key line skipped")
    assert line not in record.getMessage()  # a bad line may hold a key pasted by mistake


def test_new_key_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "ci-client", "--scopes", "predict"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"^key:  (berth_\S{43})$", out, re.M)
    line = re.search(r"^line: (ci-client [0-9a-f]{64} predict)$", out, re.M)
    assert key and line
    entries = parse_key_file(line.group(1))
    assert hashlib.sha256(key.group(1).encode()).hexdigest() in entries


def test_new_key_command_refuses_bad_names() -> None:
    with pytest.raises(SystemExit):
        main(["new", "bad name"])
    with pytest.raises(SystemExit):
        main(["new", "ok", "--scopes", "admin"])
