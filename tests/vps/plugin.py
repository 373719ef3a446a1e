"""pytest fixtures for throwaway test VPS hosts (berth.vps).

- ``vps_factory`` (session): ``.create(prefix)`` makes a host; every host it made is destroyed
  at session end, and also at interpreter exit or on SIGTERM/SIGHUP if pytest is killed.
- ``fresh_vps`` (function): one fresh host, destroyed after the test.
- ``vps_inventory`` (function): writes an Ansible inventory for hosts into tmp_path.

Hosts take indexes 10..99 (auto-picked, never colliding with the demo host at index 1).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

import pytest

from berth.vps import Config, Host, VpsError, down, up, write_inventory
from berth.vps.host import ssh_argv
from berth.vps.preflight import require_all

TEST_INDEXES = range(10, 100)
_PREFIX_RE = re.compile(r"[^a-z0-9-]+")

InventoryWriter = Callable[..., Path]


class VpsFactory:
    """Creates test hosts and remembers them so that none outlives the test session."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._names: list[str] = []
        self._lock = threading.Lock()

    def create(self, name_prefix: str = "t") -> Host:
        """A new running host named '<prefix>-<random>'; its sshd already answers."""
        prefix = _PREFIX_RE.sub("-", name_prefix.lower()).strip("-")[:30] or "t"
        name = f"{prefix}-{secrets.token_hex(3)}"
        with self._lock:
            # Remembered before it exists, so a half-created host is cleaned up too.
            self._names.append(name)
        try:
            return up(self.config, name, candidates=TEST_INDEXES)
        except VpsError as exc:
            pytest.fail(f"could not create test host {name}: {exc}", pytrace=False)

    def destroy(self, host: Host | str) -> None:
        name = host if isinstance(host, str) else host.name
        down(self.config, name)
        with self._lock, contextlib.suppress(ValueError):
            self._names.remove(name)

    def destroy_all(self) -> None:
        """Destroy every host this factory made; safe to call twice or from a signal handler."""
        errors = []
        while True:
            with self._lock:
                if not self._names:
                    break
                name = self._names.pop()
            try:
                down(self.config, name)
            except VpsError as exc:
                errors.append(f"{name}: {exc}")
        if errors:
            raise VpsError("cleanup of test hosts failed:\n" + "\n".join(errors))

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._names)

    def ssh(
        self, host: Host, command: str, *, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on host as root over SSH."""
        result = subprocess.run(
            ssh_argv(host, [command]),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"ssh {host.name} {command!r} exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}",
                pytrace=False,
            )
        return result


def _install_emergency_cleanup(factory: VpsFactory) -> Callable[[], None]:
    """Destroy the factory's hosts on interpreter exit and on SIGTERM/SIGHUP; returns undo."""

    def at_exit() -> None:
        with contextlib.suppress(Exception):
            factory.destroy_all()

    atexit.register(at_exit)
    previous: dict[int, signal.Handlers | Callable[[int, FrameType | None], object] | int | None]
    previous = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        at_exit()
        signal.signal(signum, previous.get(signum) or signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, on_signal)

    def undo() -> None:
        atexit.unregister(at_exit)
        for sig, handler in previous.items():
            signal.signal(sig, handler or signal.SIG_DFL)

    return undo


@pytest.fixture(scope="session")
def vps_factory() -> Iterator[VpsFactory]:
    """Session-wide host maker; fails (never skips) if the machine cannot run test hosts."""
    try:
        require_all()
    except VpsError as exc:
        pytest.fail(f"test VPS hosts unavailable: {exc}", pytrace=False)
    factory = VpsFactory(Config.from_env())
    undo = _install_emergency_cleanup(factory)
    try:
        yield factory
    finally:
        # Runs on failures and on KeyboardInterrupt alike; atexit is the last resort.
        factory.destroy_all()
        undo()


@pytest.fixture
def fresh_vps(vps_factory: VpsFactory, request: pytest.FixtureRequest) -> Iterator[Host]:
    """A fresh host for one test, destroyed afterwards."""
    host = vps_factory.create(request.node.name[:20])
    try:
        yield host
    finally:
        vps_factory.destroy(host)


@pytest.fixture
def vps_inventory(tmp_path: Path) -> InventoryWriter:
    """write(hosts, groups=None, variables=None, name="inventory.yml") -> inventory path."""

    def write(
        hosts: Sequence[Host],
        groups: Mapping[str, Sequence[str]] | None = None,
        variables: Mapping[str, str] | None = None,
        name: str = "inventory.yml",
        private: bool = False,
    ) -> Path:
        return write_inventory(tmp_path / name, hosts, groups, variables, private)

    return write
