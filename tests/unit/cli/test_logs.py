"""berth logs: journalctl arguments and following several hosts without repeating an entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.cli import logs
from berth.cli.runner import HostAnswer


def _entry(cursor: str, seconds: float, message: object, unit: str = "berth-api.service") -> str:
    return json.dumps(
        {
            "__CURSOR": cursor,
            "__REALTIME_TIMESTAMP": str(int(seconds * 1e6)),
            "_SYSTEMD_UNIT": unit,
            "MESSAGE": message,
        }
    )


def test_journal_argv_quotes_since_and_lists_units() -> None:
    argv = logs.journal_argv(["nginx", "berth-*"], lines=20, since="1 hour ago", json_out=False)
    assert argv == [
        "journalctl", "--no-pager", "--output", "short-iso", "--lines", "20",
        "--unit", "nginx", "--unit", "berth-*", "--since", "'1 hour ago'",
    ]  # fmt: skip
    assert logs.journal_argv([], json_out=True)[-2:] == ["--unit", "berth-*"]


def test_follower_prints_each_entry_once_oldest_first() -> None:
    follower = logs.Follower()
    first = "\n".join(
        [_entry("c2", 1_700_000_002, "second"), _entry("c1", 1_700_000_001, "first")]
    )
    lines = [line for _, line in follower.new_lines("app-1", first)]
    assert lines == [
        "app-1 | 2023-11-14T22:13:21 berth-api.service: first",
        "app-1 | 2023-11-14T22:13:22 berth-api.service: second",
    ]
    # The next poll overlaps: only the new entry comes out; the same cursor on another host is new.
    again = first + "\n" + _entry("c3", 1_700_000_003, "third") + "\nnot json"
    assert [line for _, line in follower.new_lines("app-1", again)] == [
        "app-1 | 2023-11-14T22:13:23 berth-api.service: third"
    ]
    assert len(follower.new_lines("app-2", first)) == 2


def test_follower_decodes_binary_messages() -> None:
    raw = _entry("c1", 1_700_000_001, list(b"caf\xc3\xa9 \xff"))
    [(_, line)] = logs.Follower().new_lines("h", raw)
    assert line.endswith("café \ufffd")


def test_follow_merges_hosts_by_time_and_reports_a_failing_host_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    polls = iter(
        [
            {
                "b": HostAnswer("b", ok=True, stdout=_entry("x", 1_700_000_001, "b1")),
                "a": HostAnswer("a", ok=True, stdout=_entry("y", 1_700_000_002, "a1")),
                "c": HostAnswer("c", error="ssh: connect refused\nUNREACHABLE", unreachable=True),
            },
            {
                "b": HostAnswer("b", ok=True, stdout=_entry("x", 1_700_000_001, "b1")),
                "a": HostAnswer("a", ok=True, stdout=""),
                "c": HostAnswer("c", error="ssh: connect refused\nUNREACHABLE", unreachable=True),
            },
        ]
    )
    monkeypatch.setattr(logs, "run_module", lambda *args, **kwargs: next(polls))
    monkeypatch.setattr("berth.cli.logs.time.sleep", lambda _: None)
    printed: list[str] = []
    code = logs.follow(Path("inv"), "all", [], out=printed.append, polls=range(2))
    assert code == 0
    assert printed[1:] == [
        "c | cannot read the journal: UNREACHABLE",
        "b | 2023-11-14T22:13:21 berth-api.service: b1",
        "a | 2023-11-14T22:13:22 berth-api.service: a1",
    ]
