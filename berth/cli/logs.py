"""`berth logs`: the journal of Berth's units on every host, once or followed.

Following polls each host through Ansible every few seconds for the entries of a short window
that overlaps the previous one, and prints each entry once (journal cursors are unique), prefixed
with its host. Polling, not a stream: an entry shows up a few seconds after it is written.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from berth.cli.exitcodes import Exit
from berth.cli.runner import CliError, HostAnswer, run_module

DEFAULT_UNITS = ("berth-*",)
# Each poll asks for this many seconds back, so clock skew and slow polls lose nothing.
OVERLAP_SECONDS = 30
# Cursors remembered per host to drop the entries a previous poll printed already.
REMEMBERED = 5000

Printer = Callable[[str], None]


def journal_argv(
    units: Sequence[str], *, lines: int | None = None, since: str | None = None, json_out: bool
) -> list[str]:
    """journalctl arguments for the units (a shell-quoted --since, for Ansible's command)."""
    argv = ["journalctl", "--no-pager", "--output", "json" if json_out else "short-iso"]
    if lines is not None:
        argv += ["--lines", str(lines)]
    for unit in units or DEFAULT_UNITS:
        argv += ["--unit", unit]
    if since:
        argv += ["--since", f"'{since}'"]
    return argv


@dataclass
class Follower:
    """Turns each host's JSON journal output into new lines, each entry once."""

    seen: dict[str, deque[str]] = field(default_factory=dict)
    seen_set: dict[str, set[str]] = field(default_factory=dict)

    def new_lines(self, host: str, output: str) -> list[tuple[float, str]]:
        """(timestamp, printable line) of the entries not printed before, oldest first."""
        order = self.seen.setdefault(host, deque())
        known = self.seen_set.setdefault(host, set())
        fresh: list[tuple[float, str]] = []
        for raw in output.splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            cursor = str(entry.get("__CURSOR", ""))
            if not cursor or cursor in known:
                continue
            known.add(cursor)
            order.append(cursor)
            if len(order) > REMEMBERED:
                known.discard(order.popleft())
            fresh.append(_format(host, entry))
        return sorted(fresh, key=lambda item: item[0])


def _format(host: str, entry: dict[str, object]) -> tuple[float, str]:
    micros = int(str(entry.get("__REALTIME_TIMESTAMP", "0")) or 0)
    stamp = datetime.fromtimestamp(micros / 1e6, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    unit = entry.get("_SYSTEMD_UNIT") or entry.get("SYSLOG_IDENTIFIER") or "-"
    message = entry.get("MESSAGE", "")
    if isinstance(message, list):  # journald gives non-UTF-8 messages as byte arrays
        message = bytes(int(b) for b in message).decode(errors="replace")
    return micros / 1e6, f"{host} | {stamp} {unit}: {message}"


def follow(
    inventory: Path,
    pattern: str,
    units: Sequence[str],
    *,
    interval: float = 2.0,
    out: Printer = print,
    polls: Iterable[int] | None = None,
) -> Exit:
    """Print new journal entries of every host until interrupted (or `polls` runs out)."""
    follower = Follower()
    out(f"following {', '.join(units or DEFAULT_UNITS)} on {pattern}; Ctrl-C stops")
    failing: set[str] = set()
    with _interruptible() as stop:
        for _ in polls if polls is not None else _forever():
            since = f"@{int(time.time()) - OVERLAP_SECONDS}"
            argv = journal_argv(units, since=since, json_out=True)
            try:
                answers = run_module(
                    "ansible.builtin.command",
                    " ".join(argv),
                    inventory,
                    pattern=pattern,
                    cancel=stop.is_set,
                )
            except CliError:
                if stop.is_set():
                    break
                raise
            lines: list[tuple[float, str]] = []
            for host, answer in sorted(answers.items()):
                lines += _answer_lines(follower, host, answer, failing, out)
            for _, line in sorted(lines, key=lambda item: item[0]):
                out(line)
            if stop.wait(interval):
                break
    return Exit.OK


@contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM while following; the old handlers come back."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # only the main thread may set handlers; tests call from it too
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handler(_signum: int, _frame: object) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, _handler)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _answer_lines(
    follower: Follower, host: str, answer: HostAnswer, failing: set[str], out: Printer
) -> list[tuple[float, str]]:
    if answer.ok:
        failing.discard(host)
        return follower.new_lines(host, answer.stdout)
    if host not in failing:  # say it once, not on every poll
        failing.add(host)
        reason = answer.error.strip().splitlines() or ["no answer"]
        out(f"{host} | cannot read the journal: {reason[-1]}")
    return []


def _forever() -> Iterable[int]:
    n = 0
    while True:
        yield n
        n += 1
