"""``python -m app.jobs run JOB [--dry-run]`` runs one job now; ``python -m app.jobs serve``
runs the scheduler; ``python -m app.jobs list`` shows the jobs and their cron entries."""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from app.core.config import SchedulerSettings
from app.core.logging import configure_logging
from app.jobs import runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.jobs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one job now and print its result as JSON")
    run.add_argument("job", choices=runner.JOB_NAMES)
    run.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    commands.add_parser("serve", help="run the scheduler until SIGTERM")
    commands.add_parser("list", help="print each job's cron entry")
    args = parser.parse_args(argv)
    try:
        config = SchedulerSettings()
    except ValidationError as exc:
        sys.stderr.write(f"invalid scheduler settings (BERTH_* environment):\n{exc}\n")
        return 2
    configure_logging(config.log_level, config.log_format)
    runner.use_settings(config)
    if args.command == "serve":
        from app.jobs.service import serve

        serve(config)
        return 0
    if args.command == "list":
        from app.jobs.service import schedules

        sys.stdout.write(json.dumps(schedules(config), indent=1) + "\n")
        return 0
    try:
        result = runner.run_job(args.job, dry_run=args.dry_run)
    except Exception as exc:
        sys.stderr.write(f"job {args.job} failed: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
