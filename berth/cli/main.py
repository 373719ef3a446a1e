"""berth: provision, deploy, roll back, inspect and remove Berth servers (docs/cli.md).

Every command that changes servers runs a playbook of this project through ansible-runner.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from berth import demo
from berth.cli import logs, model, status, vpscmd
from berth.cli.exitcodes import Exit
from berth.cli.runner import REPO, CliError, run_module, run_playbook

DEFAULT_INVENTORY = REPO / "inventory" / "local"
EXIT_CODES = "\n".join(f"  {code.value:>3}  {code.name.lower()}" for code in Exit)


def _inventory(value: str | None) -> Path:
    path = Path(value or os.environ.get("BERTH_INVENTORY") or DEFAULT_INVENTORY)
    if not path.exists():
        raise CliError(f"inventory {path} does not exist (give one with -i PATH)")
    if path.resolve() == DEFAULT_INVENTORY.resolve() and not (path / "hosts.yml").exists():
        raise CliError(
            f"{path}/hosts.yml is missing: start a local throwaway server with `berth vps up "
            "berth-demo`, or point at your servers with -i inventory/production"
        )
    return path


def _play(args: argparse.Namespace, playbook: str, extravars: dict[str, str]) -> Exit:
    inventory = _inventory(args.inventory)
    mode = " in check mode" if args.check else ""
    print(f"berth: running {playbook} on {inventory}{mode}")  # noqa: T201
    result = run_playbook(
        playbook,
        inventory,
        extravars=extravars,
        check=args.check,
        limit=args.limit,
        verbosity=args.verbose,
    )
    sys.stdout.write(result.progress.summary(result.seconds))
    return result.progress.exit_code()


def cmd_up(args: argparse.Namespace) -> Exit:
    return _play(args, "site.yml", {})


def cmd_deploy(args: argparse.Namespace) -> Exit:
    return _play(args, "playbooks/deploy.yml", model.deploy_vars(REPO, args.version, args.bundle))


def cmd_rollback(args: argparse.Namespace) -> Exit:
    version = args.version
    if version is None:
        version = model.previous_version(status.collect(_inventory(args.inventory), "app"))
        print(f"berth: rolling back to {version}, the version served before the current one")  # noqa: T201
    return _play(args, "playbooks/rollback.yml", {"model_rollback_version": version})


def cmd_down(args: argparse.Namespace) -> Exit:
    extravars = {
        "berth_teardown_confirm": "yes",
        "berth_teardown_keep_data": str(args.keep_data).lower(),
        "berth_teardown_hardening": str(args.hardening).lower(),
    }
    if not args.yes and not args.check:
        what = "Berth and its hardening" if args.hardening else "Berth"
        kept = " (data kept)" if args.keep_data else " including its data"
        question = (
            f"Remove {what}{kept} from every host of {_inventory(args.inventory)}? [yes/no] "
        )
        if not sys.stdin.isatty():
            raise CliError("berth down asks first; pass --yes to run without a terminal")
        if input(question).strip().lower() != "yes":
            print("berth: nothing removed")  # noqa: T201
            return Exit.OK
    return _play(args, "playbooks/teardown.yml", extravars)


def cmd_status(args: argparse.Namespace) -> Exit:
    states = status.collect(_inventory(args.inventory), args.limit or "all")
    if args.json:
        print(json.dumps({s.host: s.state or {"error": s.error} for s in states}, indent=2))  # noqa: T201
    else:
        print(status.render(states))  # noqa: T201
    return status.exit_code(states)


def cmd_logs(args: argparse.Namespace) -> Exit:
    units = args.unit or list(logs.DEFAULT_UNITS)
    if args.follow:
        return logs.follow(_inventory(args.inventory), args.limit or "all", units)
    argv = logs.journal_argv(units, lines=args.lines, since=args.since, json_out=False)
    answers = run_module(
        "ansible.builtin.command",
        " ".join(argv),
        _inventory(args.inventory),
        pattern=args.limit or "all",
    )
    code = Exit.OK
    for host, answer in sorted(answers.items()):
        print(f"==> {host} <==")  # noqa: T201
        print(answer.stdout if answer.ok else f"  {answer.error}")  # noqa: T201
        if not answer.ok:
            code = Exit.UNREACHABLE if answer.unreachable else Exit.FAILED
    return code


def cmd_try(args: argparse.Namespace) -> Exit:
    try:
        print(demo.run(args.host, REPO))  # noqa: T201
    except demo.DemoError as exc:
        raise CliError(str(exc)) from exc
    return Exit.OK


def _add_play_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="show what would change, change nothing"
    )
    parser.add_argument("--limit", help="only these hosts or groups (Ansible pattern)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berth",
        description=__doc__,
        epilog=f"exit codes:\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-i", "--inventory", help="inventory (default $BERTH_INVENTORY or inventory/local)"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more Ansible detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up", help="provision the servers: hardening, nginx, API, model (site.yml)"
    )
    _add_play_options(up)
    up.set_defaults(func=cmd_up)

    deploy = sub.add_parser("deploy", help="ship a model version, one host at a time")
    deploy.add_argument(
        "version", nargs="?", help="model version (default: this checkout's bundle)"
    )
    deploy.add_argument("--bundle", type=Path, help="bundle directory (default models/<name>)")
    _add_play_options(deploy)
    deploy.set_defaults(func=cmd_deploy)

    rollback = sub.add_parser("rollback", help="serve an earlier version still on the servers")
    rollback.add_argument("version", nargs="?", help="version (default: the one served before)")
    _add_play_options(rollback)
    rollback.set_defaults(func=cmd_rollback)

    stat = sub.add_parser("status", help="hosts, model version and age, health, deploys, alerts")
    stat.add_argument("--json", action="store_true", help="raw state as JSON")
    stat.add_argument("--limit", help="only these hosts or groups")
    stat.set_defaults(func=cmd_status)

    logs_cmd = sub.add_parser("logs", help="recent journal of the berth units on every host")
    logs_cmd.add_argument(
        "-n", "--lines", type=int, default=50, help="lines per host (default 50)"
    )
    logs_cmd.add_argument("-u", "--unit", action="append", help="unit or glob (default berth-*)")
    logs_cmd.add_argument("--since", help="journalctl --since, e.g. '1 hour ago'")
    logs_cmd.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new entries, host-prefixed"
    )
    logs_cmd.add_argument("--limit", help="only these hosts or groups")
    logs_cmd.set_defaults(func=cmd_logs)

    down = sub.add_parser("down", help="remove everything Berth installed (teardown.yml)")
    down.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    down.add_argument("--keep-data", action="store_true", help="keep models and data")
    down.add_argument(
        "--hardening",
        action="store_true",
        help="also revert ssh, firewall, fail2ban, updates, deploy user",
    )
    _add_play_options(down)
    down.set_defaults(func=cmd_down)

    trial = sub.add_parser("try", help="ask a local throwaway server for a prediction")
    trial.add_argument("--host", default="berth-demo", help="throwaway server name")
    trial.set_defaults(func=cmd_try)

    vpscmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"berth: error: {exc}", file=sys.stderr)  # noqa: T201
        return int(Exit.ERROR)
    except KeyboardInterrupt:
        print("berth: interrupted", file=sys.stderr)  # noqa: T201
        return int(Exit.INTERRUPTED)
