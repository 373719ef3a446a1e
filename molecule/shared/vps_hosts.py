"""Test VPS hosts for Molecule scenarios (called by molecule/shared/create.yml and destroy.yml).

    vps_hosts.py up RECORD INSTANCE [INSTANCE...] --user USER   # prints the instance config (JSON)
    vps_hosts.py down RECORD                                    # prints {"removed": [...]}

Each instance gets a host named '<instance>-<6 hex>' at an index in 100..139 (1 is the demo host,
pytest uses 10..99). Every name is written to RECORD (JSON) before the host is started, so
`down` also removes a host whose creation or converge failed, and a later `up` first removes
what an interrupted run left behind. Only hosts named in RECORD are ever touched.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from berth.vps import Config, VpsError, down, up

MOLECULE_INDEXES = range(100, 140)


def _read(record: Path) -> list[str]:
    if not record.exists():
        return []
    names: list[str] = json.loads(record.read_text())["hosts"]
    return names


def _write(record: Path, names: list[str]) -> None:
    """Replace the record atomically, so a crash never leaves half a file."""
    record.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=record.parent, prefix=f".{record.name}.")
    with os.fdopen(fd, "w") as stream:
        json.dump({"hosts": names}, stream)
    os.replace(tmp, record)


def _down_recorded(config: Config, record: Path) -> list[str]:
    removed = []
    names = _read(record)
    while names:
        name = names[-1]
        if down(config, name):
            removed.append(name)
        names.pop()
        _write(record, names)
    record.unlink(missing_ok=True)
    return removed


def _cmd_up(config: Config, record: Path, instances: list[str], user: str) -> dict[str, Any]:
    leftovers = _down_recorded(config, record)
    names: list[str] = []
    instance_config = []
    for instance in instances:
        name = f"{instance}-{secrets.token_hex(3)}"
        names.append(name)
        _write(record, names)
        host = up(config, name, candidates=MOLECULE_INDEXES)
        instance_config.append(
            {
                "instance": instance,
                "vps_name": host.name,
                "address": host.address,
                "user": user,
                "port": 22,
                "identity_file": str(host.key_path),
            }
        )
    return {"removed_leftovers": leftovers, "instances": instance_config}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Test VPS hosts for Molecule scenarios.")
    sub = parser.add_subparsers(dest="command", required=True)
    up_cmd = sub.add_parser("up", help="remove recorded leftovers, then one host per instance")
    up_cmd.add_argument("record", type=Path)
    up_cmd.add_argument("instances", nargs="+")
    up_cmd.add_argument("--user", required=True, help="login user written to the instance config")
    down_cmd = sub.add_parser("down", help="remove every host named in the record")
    down_cmd.add_argument("record", type=Path)
    args = parser.parse_args(argv)
    # Ansible stops a task with SIGTERM: clean up as on Ctrl-C (up removes a half-made host).
    signal.signal(signal.SIGTERM, _interrupt)
    config = Config.from_env()
    try:
        if args.command == "up":
            result = _cmd_up(config, args.record, args.instances, args.user)
        else:
            result = {"removed": _down_recorded(config, args.record)}
    except VpsError as exc:
        sys.stderr.write(f"vps_hosts: error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
