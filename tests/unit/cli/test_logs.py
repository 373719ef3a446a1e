"""berth logs: journalctl arguments and following several hosts without repeating an entry."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

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
    printed: list[str] = []
    code = logs.follow(Path("inv"), "all", [], interval=0, out=printed.append, polls=range(2))
    assert code == 0
    assert printed[1:] == [
        "c | cannot read the journal: UNREACHABLE",
        "b | 2023-11-14T22:13:21 berth-api.service: b1",
        "a | 2023-11-14T22:13:22 berth-api.service: a1",
    ]


def test_ctrl_c_ends_following_and_restores_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    before = signal.getsignal(signal.SIGINT)
    calls: list[bool] = []

    def fake_run_module(*args: object, cancel: Any = None, **kwargs: object) -> dict[str, Any]:
        assert cancel is not None  # else ansible-runner takes SIGINT over for good
        calls.append(cancel())
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while a poll runs
        return {}

    monkeypatch.setattr(logs, "run_module", fake_run_module)
    code = logs.follow(Path("inv"), "all", [], interval=30, out=lambda _: None)
    assert code == 0
    assert calls == [False, False]  # stopped after the interrupted poll, without a 30 s wait
    assert signal.getsignal(signal.SIGINT) is before


def test_run_module_with_a_cancel_check_leaves_the_signal_handlers_alone(tmp_path: Path) -> None:
    """ansible-runner replaces SIGINT's handler for good unless given a cancel callback."""
    from berth.cli.runner import run_module

    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"local ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    before = signal.getsignal(signal.SIGINT)
    answers = run_module(
        "ansible.builtin.command", "echo hi", inventory, become=False, cancel=lambda: False
    )
    assert answers["local"].ok and answers["local"].stdout == "hi"
    assert signal.getsignal(signal.SIGINT) is before
