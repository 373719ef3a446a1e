"""`berth vps up|down|list`: local throwaway servers (berth.vps) and their inventory."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from berth.cli.exitcodes import Exit
from berth.cli.runner import REPO, CliError
from berth.vps import Config, VpsError, down, status, up, write_inventory

LOCAL_HOSTS = REPO / "inventory" / "local" / "hosts.yml"
GROUPS = ("app", "lb", "monitoring")


def cmd_vps(args: argparse.Namespace) -> Exit:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = Config.from_env()
    try:
        if args.vps_command == "up":
            host = up(config, args.name, args.index)
            write_inventory(LOCAL_HOSTS, [host], {group: [host.name] for group in GROUPS})
            print(f"{host.name} is up at {host.address}; inventory: {LOCAL_HOSTS}")  # noqa: T201
            print("next: berth up")  # noqa: T201
        elif args.vps_command == "down":
            removed = down(config, args.name)
            if LOCAL_HOSTS.exists() and f"    {args.name}:" in LOCAL_HOSTS.read_text():
                LOCAL_HOSTS.unlink()
            print(f"removed {args.name}" if removed else f"no host named {args.name}")  # noqa: T201
        else:
            print(f"{'NAME':<24} {'INDEX':>5}  {'ADDRESS':<15} STATE")  # noqa: T201
            for row in status(config):
                print(f"{row.name:<24} {row.index:>5}  {row.address:<15} {row.state}")  # noqa: T201
    except VpsError as exc:
        raise CliError(str(exc)) from exc
    return Exit.OK


def add_parser(sub: Any) -> None:
    vps = sub.add_parser("vps", help="local throwaway servers (systemd-nspawn, needs root)")
    vsub = vps.add_subparsers(dest="vps_command", required=True, metavar="ACTION")
    vup = vsub.add_parser("up", help="start a server and write inventory/local/hosts.yml for it")
    vup.add_argument("name", nargs="?", default="berth-demo")
    vup.add_argument("--index", type=int, default=1, help="subnet 10.231.INDEX.0/24 (default 1)")
    vdown = vsub.add_parser("down", help="destroy a server (and its inventory)")
    vdown.add_argument("name", nargs="?", default="berth-demo")
    vsub.add_parser("list", help="servers: name, index, address, state")
    vps.set_defaults(func=cmd_vps)
