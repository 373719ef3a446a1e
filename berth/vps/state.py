"""What exists: one JSON record per host under the run directory.

A record is written before anything else is created for a host, so `down` can always find
and remove a half-created host. Each daemon is recorded with its PID and start time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.vps import config as cfg
from berth.vps.config import Config
from berth.vps.errors import VpsError
from berth.vps.fsutil import write_atomic
from berth.vps.proc import ProcRef, is_running

# A hostname label; the name is also the network namespace and the host directory name.
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")

CREATING = "creating"
UP = "up"


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise VpsError(
            f"invalid host name {name!r}: use 1-40 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def check_index(index: int) -> int:
    if not cfg.INDEX_MIN <= index <= cfg.INDEX_MAX:
        raise VpsError(f"index {index} out of range {cfg.INDEX_MIN}..{cfg.INDEX_MAX}")
    return index


@dataclass
class HostState:
    """The record of one host and the processes that make it."""

    name: str
    index: int
    root: Path
    phase: str = CREATING
    processes: dict[str, ProcRef] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return cfg.address(self.index)

    @property
    def gateway(self) -> str:
        return cfg.gateway(self.index)

    @property
    def machine(self) -> str:
        """nspawn's machine name; short so its veth name fits the 15-byte interface limit."""
        return f"berth-{self.index}"

    @property
    def veth(self) -> str:
        return f"ve-{self.machine}"

    @property
    def lan_address(self) -> str:
        return cfg.lan_address(self.index)

    @property
    def lan_veth(self) -> str:
        """The control node's end of the guest's link to the private network."""
        return f"vl-{self.machine}"

    @property
    def netns(self) -> str:
        return self.name

    def alive(self) -> bool:
        """True when fully up and every recorded daemon is still the process we started."""
        return (
            self.phase == UP
            and bool(self.processes)
            and all(is_running(ref) for ref in self.processes.values())
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "address": self.address,
            "root": str(self.root),
            "phase": self.phase,
            "processes": {role: ref.to_json() for role, ref in self.processes.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostState:
        return cls(
            name=str(data["name"]),
            index=int(data["index"]),
            root=Path(data["root"]),
            phase=str(data.get("phase", CREATING)),
            processes={
                role: ProcRef.from_json(ref) for role, ref in dict(data["processes"]).items()
            },
        )


def state_path(config: Config, name: str) -> Path:
    return config.host_state_dir / f"{name}.json"


def log_path(config: Config, name: str) -> Path:
    return config.host_state_dir / f"{name}.log"


def socket_path(config: Config, name: str) -> Path:
    return config.host_state_dir / f"{name}.proxy.sock"


def save(config: Config, state: HostState) -> None:
    write_atomic(state_path(config, state.name), json.dumps(state.to_json(), indent=2) + "\n")


def load(config: Config, name: str) -> HostState | None:
    path = state_path(config, name)
    try:
        return HostState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise VpsError(f"corrupt state file {path}: {exc}") from exc


def load_all(config: Config) -> list[HostState]:
    if not config.host_state_dir.is_dir():
        return []
    states = [load(config, path.stem) for path in config.host_state_dir.glob("*.json")]
    return sorted((s for s in states if s is not None), key=lambda s: s.index)


def forget(config: Config, name: str) -> None:
    state_path(config, name).unlink(missing_ok=True)


def pick_index(config: Config, taken_elsewhere: set[int], candidates: range) -> int:
    """The lowest index in candidates that no recorded host and no live link uses."""
    used = {s.index for s in load_all(config)} | taken_elsewhere
    for index in candidates:
        if index not in used:
            return check_index(index)
    raise VpsError(f"no free index in {candidates.start}..{candidates.stop - 1}")
