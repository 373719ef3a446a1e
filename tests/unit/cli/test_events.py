"""Progress display and summary, fed with events ansible-runner really emitted."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from berth.cli.events import MAX_MESSAGE_LINES, Progress, failure_message, task_label
from berth.cli.exitcodes import Exit

EVENTS = Path(__file__).parent / "fixtures" / "sample-events.jsonl"


def _events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in EVENTS.read_text().splitlines()]


@pytest.fixture
def replayed() -> tuple[Progress, str]:
    out = io.StringIO()
    progress = Progress(out=out)
    for event in _events():
        assert progress.handle(event) is False  # runner keeps no event files
    return progress, out.getvalue()


def test_progress_prints_one_line_per_task_with_counts(replayed: tuple[Progress, str]) -> None:
    progress, text = replayed
    assert progress.plays == 1
    assert progress.tasks == 6
    assert "PLAY 1: Sample play for the event renderer [all]" in text
    assert "[  2] A task that changes something changed=1 skipped=1\n" in text
    assert "[  3] A task that is skipped skipped=2\n" in text
    assert "[  4] A failure that is ignored skipped=1 ignored=1\n" in text


def test_failures_show_host_task_and_the_message_that_matters(
    replayed: tuple[Progress, str],
) -> None:
    progress, text = replayed
    by_host = {f.host: f for f in progress.failures}
    assert set(by_host) == {"gone", "bad", "good"}
    assert by_host["bad"].task == "install | Install the wheels"
    # stderr, not "non-zero return code" and not stdout's noise
    assert by_host["bad"].message == (
        "ERROR - No matching distribution found for async-timeout (exit 1)"
    )
    assert by_host["good"].message.startswith("[no-such-dir] ls: cannot access '/no-such-dir'")
    assert by_host["gone"].unreachable
    assert "Connection refused" in by_host["gone"].message
    assert "FAILED bad | install | Install the wheels" in text
    assert "{" not in text  # never a JSON wall


def test_summary_table_counts_per_host(replayed: tuple[Progress, str]) -> None:
    progress, _ = replayed
    assert progress.stats["good"] == {
        "ok": 3,
        "changed": 1,
        "failed": 1,
        "unreachable": 0,
        "skipped": 2,
        "rescued": 0,
        "ignored": 1,
    }
    assert progress.stats["gone"]["unreachable"] == 1
    summary = progress.summary(75.4)
    lines = summary.splitlines()
    header = next(line for line in lines if line.strip().startswith("HOST"))
    assert header.split() == [
        "HOST", "OK", "CHANGED", "FAILED", "UNREACHABLE", "SKIPPED", "RESCUED", "IGNORED",
    ]  # fmt: skip
    assert any(line.split() == ["good", "3", "1", "1", "0", "2", "0", "1"] for line in lines)
    assert "3 problem(s):" in summary
    assert lines[-1] == "FAILED: 1 plays, 6 tasks in 1m 15s"


def test_exit_code_failed_beats_unreachable(replayed: tuple[Progress, str]) -> None:
    progress, _ = replayed
    assert progress.exit_code() is Exit.FAILED


def test_exit_code_unreachable_only() -> None:
    progress = Progress(out=io.StringIO())
    for event in _events():
        data = event.get("event_data") or {}
        if event["event"] == "runner_on_failed":
            continue  # keep only the unreachable host's problem
        if event["event"] == "playbook_on_stats":
            event = {**event, "event_data": {**data, "failures": {}}}
        progress.handle(event)
    assert progress.exit_code() is Exit.UNREACHABLE
    assert progress.summary(3).splitlines()[-1].startswith("UNREACHABLE:")


def test_clean_run_exits_ok_and_says_check_mode() -> None:
    progress = Progress(out=io.StringIO(), check=True)
    progress.handle({"event": "playbook_on_play_start", "event_data": {"play": "P"}})
    progress.handle(
        {"event": "playbook_on_task_start", "event_data": {"task": "t", "role": "nginx"}}
    )
    progress.handle(
        {"event": "runner_on_ok", "event_data": {"host": "h", "res": {"changed": True}}}
    )
    progress.handle(
        {"event": "playbook_on_stats", "event_data": {"ok": {"h": 1}, "changed": {"h": 1}}}
    )
    assert progress.exit_code() is Exit.OK
    out = progress.out.getvalue()  # type: ignore[attr-defined]
    assert "[  1] nginx : t changed=1\n" in out
    assert "check mode: nothing was changed" in progress.summary(61)
    assert "in 1m 01s" in progress.summary(61)


def test_long_messages_are_clipped_to_the_last_lines() -> None:
    stderr = "\n".join(f"line {n}" for n in range(100))
    message = failure_message({"msg": "non-zero return code", "stderr": stderr, "rc": 2})
    lines = message.splitlines()
    assert len(lines) == MAX_MESSAGE_LINES + 1
    assert lines[0] == "... (88 earlier lines)"
    assert lines[-1] == "line 99 (exit 2)"


def test_assert_messages_are_kept_as_written() -> None:
    res = {"msg": "No model bundle at /x (manifest.json is missing).", "assertion": "a"}
    assert failure_message(res) == "No model bundle at /x (manifest.json is missing)."


def test_task_label_names_the_role() -> None:
    assert task_label({"task": "install | Install nginx", "role": "nginx"}) == (
        "nginx : install | Install nginx"
    )
    assert task_label({"task": "Gathering Facts"}) == "Gathering Facts"
