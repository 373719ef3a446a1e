"""Turn ansible-runner events into a progress display, readable failures and a summary.

Events are the dicts ansible-runner hands to an event_handler (`event`, `event_data`, ...). Nothing
here talks to Ansible: the tests feed recorded events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from berth.cli.exitcodes import Exit

Event = Mapping[str, Any]

_RESULT_KINDS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
_STAT_COLUMNS = (
    ("ok", "ok"),
    ("changed", "changed"),
    ("failed", "failures"),
    ("unreachable", "dark"),
    ("skipped", "skipped"),
    ("rescued", "rescued"),
    ("ignored", "ignored"),
)
# Messages that say nothing by themselves: the useful part is in stderr/stdout.
_GENERIC_MESSAGES = (
    "non-zero return code",
    "MODULE FAILURE",
    "Module result deserialization failed",
    "One or more items failed",
    "All items completed",
)
MAX_MESSAGE_LINES = 12
MAX_LINE = 300


@dataclass(frozen=True)
class Failure:
    """One host's failed (or unreachable) task, reduced to what an operator needs."""

    host: str
    task: str
    message: str
    unreachable: bool = False

    def render(self) -> str:
        kind = "UNREACHABLE" if self.unreachable else "FAILED"
        lines = [f"  {kind} {self.host} | {self.task}"]
        lines += [f"      {line}" for line in self.message.splitlines()]
        return "\n".join(lines)


def _clip(text: str) -> str:
    lines = [line[:MAX_LINE] for line in text.strip().splitlines() if line.strip()]
    if len(lines) > MAX_MESSAGE_LINES:
        skipped = len(lines) - MAX_MESSAGE_LINES
        lines = [f"... ({skipped} earlier lines)", *lines[-MAX_MESSAGE_LINES:]]
    return "\n".join(lines)


def _single_message(res: Mapping[str, Any]) -> str:
    msg = str(res.get("msg") or "").strip()
    details = ""
    for key in ("stderr", "module_stderr", "stdout", "module_stdout"):
        value = str(res.get(key) or "").strip()
        if value:
            details = value
            break
    generic = not msg or any(msg.startswith(g) for g in _GENERIC_MESSAGES)
    if generic and details:
        rc = res.get("rc")
        suffix = f" (exit {rc})" if isinstance(rc, int) and rc != 0 else ""
        return _clip(details) + suffix
    return _clip(msg or details or "failed without a message (run with -v for the raw result)")


def failure_message(res: Mapping[str, Any]) -> str:
    """The message that matters in a failed result: the failed loop items, msg, or stderr."""
    results = res.get("results")
    if isinstance(results, list):
        failed = [r for r in results if isinstance(r, Mapping) and r.get("failed")]
        if failed:
            parts = []
            for item in failed:
                label = item.get("_ansible_item_label", item.get("item", "?"))
                parts.append(f"[{label}] {_single_message(item)}")
            return _clip("\n".join(parts))
    return _single_message(res)


def task_label(data: Mapping[str, Any]) -> str:
    """`role : task name` as ansible-playbook prints it."""
    name = str(data.get("task") or data.get("name") or data.get("task_action") or "?").strip()
    role = str(data.get("role") or "").strip()
    return f"{role} : {name}" if role else name


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@dataclass
class Progress:
    """Consumes events; writes one line per task (with counts) and failures as they happen."""

    out: TextIO
    check: bool = False
    failures: list[Failure] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    plays: int = 0
    tasks: int = 0
    _task_open: bool = False
    _task_counts: Counter[str] = field(default_factory=Counter)
    _task_failures: list[Failure] = field(default_factory=list)
    _totals: Counter[str] = field(default_factory=Counter)

    def handle(self, event: Event) -> bool:
        """ansible-runner event_handler; returns False so runner does not keep events on disk."""
        kind = str(event.get("event", ""))
        data: Mapping[str, Any] = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self._close_task()
            self.plays += 1
            name = str(data.get("play") or data.get("name") or data.get("play_pattern") or "")
            pattern = data.get("play_pattern", "")
            self._write(f"\nPLAY {self.plays}: {name.strip()} [{pattern}]\n")
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self._close_task()
            self.tasks += 1
            prefix = "handler " if kind == "playbook_on_handler_task_start" else ""
            self._write(f"  [{self.tasks:>3}] {prefix}{task_label(data)} ")
            self._task_open = True
        elif kind in _RESULT_KINDS:
            self._result(kind, data)
        elif kind == "playbook_on_stats":
            self._close_task()
            self.stats = self._read_stats(data)
        return False

    def _result(self, kind: str, data: Mapping[str, Any]) -> None:
        res: Mapping[str, Any] = data.get("res") or {}
        outcome = _RESULT_KINDS[kind]
        if outcome == "ok" and res.get("changed"):
            outcome = "changed"
        if outcome == "failed" and data.get("ignore_errors"):
            outcome = "ignored"
        self._task_counts[outcome] += 1
        self._totals[outcome] += 1
        if outcome in ("failed", "unreachable"):
            failure = Failure(
                host=str(data.get("host", "?")),
                task=task_label(data),
                message=failure_message(res),
                unreachable=outcome == "unreachable",
            )
            self.failures.append(failure)
            self._task_failures.append(failure)

    def _close_task(self) -> None:
        if not self._task_open:
            return
        order = ("ok", "changed", "skipped", "failed", "unreachable", "ignored")
        counts = " ".join(f"{k}={self._task_counts[k]}" for k in order if self._task_counts[k])
        self._write(f"{counts or '-'}\n")
        for failure in self._task_failures:
            self._write(failure.render() + "\n")
        self._task_open = False
        self._task_counts.clear()
        self._task_failures.clear()

    @staticmethod
    def _read_stats(data: Mapping[str, Any]) -> dict[str, dict[str, int]]:
        hosts: set[str] = set()
        for _, key in _STAT_COLUMNS:
            hosts.update((data.get(key) or {}).keys())
        return {
            host: {col: int((data.get(key) or {}).get(host, 0)) for col, key in _STAT_COLUMNS}
            for host in sorted(hosts)
        }

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def exit_code(self) -> Exit:
        if any(row["failed"] for row in self.stats.values()) or any(
            not f.unreachable for f in self.failures
        ):
            return Exit.FAILED
        if any(row["unreachable"] for row in self.stats.values()) or self.failures:
            return Exit.UNREACHABLE
        return Exit.OK

    def summary(self, seconds: float) -> str:
        """The end table: counts per host, the failures again, duration and result."""
        header = ["HOST", *(col.upper() for col, _ in _STAT_COLUMNS)]
        rows = [
            [host, *(str(c[col]) for col, _ in _STAT_COLUMNS)] for host, c in self.stats.items()
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def fmt(row: list[str]) -> str:
            cells = [row[0].ljust(widths[0])] + [
                v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
            ]
            return "  " + "  ".join(cells)

        lines = ["", "SUMMARY", fmt(header), *(fmt(r) for r in rows)]
        if not rows:
            lines.append("  (no host was reached: see the messages above)")
        if self.failures:
            lines += [
                "",
                f"{len(self.failures)} problem(s):",
                *(f.render() for f in self.failures),
            ]
        code = self.exit_code()
        verdict = {
            Exit.OK: "ok",
            Exit.FAILED: "FAILED",
            Exit.UNREACHABLE: "UNREACHABLE",
        }.get(code, code.name)
        mode = (
            " (check mode: nothing was changed; 'changed' means would change)"
            if self.check
            else ""
        )
        lines += [
            "",
            f"{verdict}: {self.plays} plays, {self.tasks} tasks in {_duration(seconds)}{mode}",
        ]
        return "\n".join(lines) + "\n"
