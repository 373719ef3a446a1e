"""Exit codes of the berth command (documented in docs/cli.md)."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    ERROR = 1  # bad input or setup (missing inventory, model, tool): nothing ran on a server
    USAGE = 2  # wrong command line (argparse uses 2 as well)
    FAILED = 3  # a task failed on at least one host
    UNREACHABLE = 4  # at least one host could not be reached (and no task failed)
    UNHEALTHY = 5  # `berth status`: a host answered but is not healthy, or alerts are firing
    INTERRUPTED = 130  # Ctrl-C
