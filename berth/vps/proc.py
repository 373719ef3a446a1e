"""Running commands, and starting, recognising and stopping the daemons the tool owns."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from berth.vps.errors import VpsError

_PROC = Path("/proc")


def tail(text: str, lines: int = 20) -> str:
    """The last lines of a command's output, for error messages."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its output.

    With check, a non-zero exit raises VpsError carrying the tail of stderr.
    """
    try:
        result = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise VpsError(f"command not found: {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise VpsError(f"timed out after {timeout} s: {' '.join(argv)}") from exc
    if check and result.returncode != 0:
        detail = tail(result.stderr or result.stdout)
        raise VpsError(f"failed (exit {result.returncode}): {' '.join(argv)}\n{detail}")
    return result


@dataclass(frozen=True)
class ProcRef:
    """A process we started, identified so that a reused PID is never mistaken for it."""

    pid: int
    start_time: int
    comm: str

    def to_json(self) -> dict[str, int | str]:
        return {"pid": self.pid, "start_time": self.start_time, "comm": self.comm}

    @classmethod
    def from_json(cls, data: dict[str, int | str]) -> ProcRef:
        return cls(
            pid=int(data["pid"]), start_time=int(data["start_time"]), comm=str(data["comm"])
        )


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, or None if there is no such process."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return raw[raw.rindex(")") + 2 :].split()


def _comm(pid: int) -> str | None:
    try:
        return (_PROC / str(pid) / "comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return None


def identify(pid: int) -> ProcRef | None:
    """Describe a running process so it can be recognised later."""
    fields = _stat_fields(pid)
    comm = _comm(pid)
    if fields is None or comm is None:
        return None
    return ProcRef(pid=pid, start_time=int(fields[19]), comm=comm)


def is_running(ref: ProcRef) -> bool:
    """True if the process is still the one we started and has not exited (zombies are gone)."""
    fields = _stat_fields(ref.pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return int(fields[19]) == ref.start_time and _comm(ref.pid) == ref.comm


def cmdline(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def children(pid: int) -> list[int]:
    """PIDs whose parent is pid."""
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def find(predicate_argv: Sequence[str]) -> list[int]:
    """PIDs whose command line contains every string of predicate_argv as a whole argument."""
    wanted = set(predicate_argv)
    return [
        int(entry.name)
        for entry in _PROC.iterdir()
        if entry.name.isdigit() and wanted.issubset(cmdline(int(entry.name)))
    ]


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    user: str | None = None,
    expect_comm: str | None = None,
) -> ProcRef:
    """Start a daemon in its own session, detached from our terminal, output to log_path.

    user runs it without root's privileges; expect_comm is the program name to wait for when
    argv is a wrapper that execs it.
    """
    with log_path.open("ab") as log:
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user is not None else None,
            )
        except FileNotFoundError as exc:
            raise VpsError(f"command not found: {argv[0]}") from exc
    if expect_comm is not None:
        # A wrapper such as `ip netns exec` replaces itself with the real program: wait for it.
        deadline = time.monotonic() + 5
        while _comm(child.pid) not in (expect_comm, None) and time.monotonic() < deadline:
            time.sleep(0.02)
    ref = identify(child.pid)
    if ref is None or (expect_comm is not None and ref.comm != expect_comm):
        raise VpsError(f"{argv[0]} exited at once; see {log_path}")
    return ref


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child, so it does not stay a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(ref: ProcRef, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(ref.pid)
        if not is_running(ref):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def stop(ref: ProcRef, timeout: float = 10.0) -> None:
    """SIGTERM the process if it still is the one we started, then SIGKILL after timeout."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not is_running(ref):
            _reap(ref.pid)
            return
        try:
            os.kill(ref.pid, sig)
        except ProcessLookupError:
            return
        if wait_gone(ref, wait):
            return
    raise VpsError(f"process {ref.pid} ({ref.comm}) survived SIGKILL")


def run_to_log(argv: Sequence[str], log_path: Path) -> int:
    """Run a long command with its output appended to log_path; return its exit code."""
    with log_path.open("a") as log:
        log.write(" ".join(argv) + "\n")
        log.flush()
        try:
            done = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        except FileNotFoundError as exc:
            raise VpsError(f"command not found: {argv[0]}") from exc
    return done.returncode


def namespace_inits_in_netns(netns_path: Path) -> list[ProcRef]:
    """PID-namespace init processes (container inits) living in the network namespace."""
    try:
        target = netns_path.stat().st_ino
    except FileNotFoundError:
        return []
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "ns/net").stat().st_ino != target:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        nspids = next(
            (ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), []
        )
        ref = identify(int(entry.name))
        if len(nspids) > 1 and nspids[-1] == "1" and ref is not None:
            found.append(ref)
    return found
