"""Command line: python -m berth.vps {base,up,down,list,ssh,inventory,proxy}."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from berth.vps import host, preflight, proxy
from berth.vps import state as st
from berth.vps.base import ensure_base
from berth.vps.config import Config
from berth.vps.errors import VpsError
from berth.vps.inventory import parse_group_args, write_inventory

log = logging.getLogger("berth.vps")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="testvps", description="Throwaway Debian 12 test VPS hosts (systemd-nspawn)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    base = sub.add_parser("base", help="build the cached base image if missing or outdated")
    base.add_argument("--rebuild", action="store_true", help="build even if it is cached")
    up = sub.add_parser("up", help="create a host (or report it if already up); prints address")
    up.add_argument("name")
    up.add_argument("--index", type=int, help="subnet 10.231.INDEX.0/24 (default: lowest free)")
    down = sub.add_parser("down", help="destroy a host, or every host and the proxy")
    target = down.add_mutually_exclusive_group(required=True)
    target.add_argument("name", nargs="?")
    target.add_argument("--all", action="store_true")
    sub.add_parser("list", help="hosts: name, index, address, alive/dead")
    ssh = sub.add_parser("ssh", help="ssh to a host (a command, or a shell)")
    ssh.add_argument("name")
    ssh.add_argument(
        "--user",
        default="root",
        help="login user, given before NAME (default root; after site.yml: --user deploy)",
    )
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    inv = sub.add_parser("inventory", help="write an Ansible YAML inventory for hosts")
    inv.add_argument("path", type=Path)
    inv.add_argument("names", nargs="+", metavar="NAME")
    inv.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="G[=NAME,...]",
        help="put the hosts (all, or the ones listed) in group G; repeatable",
    )
    inv.add_argument(
        "--private",
        action="store_true",
        help="give each host its berth_private_address on the hosts' private network (multi-host)",
    )
    prx = sub.add_parser("proxy", help="start or stop the shared apt proxy")
    prx.add_argument("action", choices=["up", "down"])
    return parser


def _cmd_up(config: Config, args: argparse.Namespace) -> int:
    made = host.up(config, args.name, args.index)
    sys.stdout.write(f"{made.address}\n")
    return 0


def _cmd_down(config: Config, args: argparse.Namespace) -> int:
    preflight.require_root()
    if args.all:
        for name in host.down_all(config):
            log.info("removed %s", name)
        if proxy.stop_proxy(config):
            log.info("stopped the apt proxy")
        return 0
    if host.down(config, args.name):
        log.info("removed %s", args.name)
    else:
        log.info("no host named %s (nothing to do)", args.name)
    return 0


def _cmd_list(config: Config) -> int:
    rows = host.status(config)
    sys.stdout.write(f"{'NAME':<24} {'INDEX':>5}  {'ADDRESS':<15} STATE\n")
    for row in rows:
        sys.stdout.write(f"{row.name:<24} {row.index:>5}  {row.address:<15} {row.state}\n")
    return 0


def _cmd_ssh(config: Config, args: argparse.Namespace) -> int:
    target = dataclasses.replace(host.get(config, args.name), user=args.user)
    argv = host.ssh_argv(target, list(args.cmd))
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def _cmd_inventory(config: Config, args: argparse.Namespace) -> int:
    hosts = [host.get(config, name) for name in args.names]
    groups = parse_group_args(args.group, args.names)
    write_inventory(args.path, hosts, groups, private=args.private)
    log.info("wrote %s", args.path)
    return 0


def _cmd_proxy(config: Config, args: argparse.Namespace) -> int:
    preflight.require_all()
    if args.action == "up":
        proxy.ensure_proxy(config)
        return 0
    remaining = [s.name for s in st.load_all(config)]
    if remaining:
        raise VpsError(f"hosts still use the proxy: {', '.join(remaining)} (down them first)")
    proxy.stop_proxy(config)
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Treat SIGTERM like Ctrl-C so an interrupted `up` still removes what it made.
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = Config.from_env()
    try:
        if args.command == "base":
            preflight.require_all()
            sys.stdout.write(f"{ensure_base(config, rebuild=args.rebuild)}\n")
            return 0
        if args.command == "up":
            return _cmd_up(config, args)
        if args.command == "down":
            return _cmd_down(config, args)
        if args.command == "list":
            return _cmd_list(config)
        if args.command == "ssh":
            return _cmd_ssh(config, args)
        if args.command == "inventory":
            return _cmd_inventory(config, args)
        return _cmd_proxy(config, args)
    except VpsError as exc:
        sys.stderr.write(f"testvps: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("testvps: interrupted\n")
        return 130
