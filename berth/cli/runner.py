"""Run playbooks and ad-hoc modules through ansible-runner with this project's config."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import ansible_runner

from berth.cli.events import Event, Progress, failure_message

REPO = Path(__file__).resolve().parents[2]


class CliError(RuntimeError):
    """Bad input or setup; the message says what was wrong and what to do."""


def ansible_env(project: Path) -> dict[str, str]:
    """Environment for ansible: the project's ansible.cfg and roles, the venv first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(project / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONPATH": str(project),
        "PATH": bin_dir if not path else f"{bin_dir}{os.pathsep}{path}",
    }


@contextmanager
def _private_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="berth-run-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class PlaybookResult:
    progress: Progress
    seconds: float
    runner_rc: int
    runner_status: str


def run_playbook(
    playbook: str,
    inventory: Path,
    *,
    project: Path = REPO,
    extravars: Mapping[str, Any] | None = None,
    check: bool = False,
    limit: str | None = None,
    verbosity: int = 0,
    out: TextIO = sys.stdout,
) -> PlaybookResult:
    """Run one playbook of the project, showing progress on out; returns counts and failures."""
    if not (project / playbook).is_file():
        raise CliError(f"{project / playbook} does not exist")
    progress = Progress(out=out, check=check)
    cmdline = " ".join(["--check", "--diff"] if check else [])
    os.environ.update(ansible_env(project))
    started = time.monotonic()
    with _private_dir() as private:
        result = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(project),
            playbook=playbook,
            inventory=str(inventory.resolve()),
            extravars=dict(extravars or {}),
            cmdline=cmdline or None,
            limit=limit,
            verbosity=verbosity or None,
            envvars=ansible_env(project),
            event_handler=progress.handle,
            quiet=True,
        )
        if not progress.stats and result.rc != 0:
            # ansible-playbook stopped before any play (syntax or inventory error): show its words.
            tail = result.stdout.read()[-3000:] if result.stdout else ""
            raise CliError(f"ansible-playbook {playbook} exited {result.rc}:\n{tail.strip()}")
    return PlaybookResult(progress, time.monotonic() - started, int(result.rc), str(result.status))


@dataclass
class HostAnswer:
    """What one host said to an ad-hoc module."""

    host: str
    ok: bool = False
    stdout: str = ""
    error: str = ""
    unreachable: bool = False


@dataclass
class _Collector:
    answers: dict[str, HostAnswer] = field(default_factory=dict)

    def handle(self, event: Event) -> bool:
        kind = event.get("event")
        data = event.get("event_data") or {}
        host = str(data.get("host", ""))
        res = data.get("res") or {}
        if kind == "runner_on_ok":
            self.answers[host] = HostAnswer(host, ok=True, stdout=str(res.get("stdout", "")))
        elif kind == "runner_on_failed":
            self.answers[host] = HostAnswer(
                host, stdout=str(res.get("stdout", "")), error=failure_message(res)
            )
        elif kind == "runner_on_unreachable":
            self.answers[host] = HostAnswer(host, error=failure_message(res), unreachable=True)
        return False


def run_module(
    module: str,
    args: str,
    inventory: Path,
    *,
    pattern: str = "all",
    become: bool = True,
    project: Path = REPO,
    timeout: int = 60,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, HostAnswer]:
    """Run one module on every host matching pattern; answers by host name.

    Without `cancel`, ansible-runner installs SIGINT/SIGTERM handlers of its own that stay in
    place after the run (Ctrl-C then no longer raises KeyboardInterrupt); a caller that loops
    passes its own cancel check, and ansible-runner leaves the handlers alone.
    """
    collector = _Collector()
    extra: dict[str, Any] = {"cancel_callback": cancel} if cancel is not None else {}
    os.environ.update(ansible_env(project))
    with _private_dir() as private:
        result = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(project),
            host_pattern=pattern,
            module=module,
            module_args=args,
            inventory=str(inventory.resolve()),
            cmdline="--become" if become else None,
            envvars=ansible_env(project),
            event_handler=collector.handle,
            quiet=True,
            timeout=timeout,
            **extra,
        )
        if not collector.answers and result.rc != 0:
            tail = result.stdout.read()[-2000:] if result.stdout else ""
            raise CliError(f"ansible {module} exited {result.rc}:\n{tail.strip()}")
    return collector.answers
