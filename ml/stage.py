"""What every stage's ``python -m ml.<stage>`` entry point shares."""

from __future__ import annotations

import logging
from collections.abc import Callable


class StageError(Exception):
    """A stage refuses to continue; the message says why and what to do."""


def cli(main: Callable[[], object]) -> None:
    """Run a stage's ``main``; a refusal exits non-zero with its message, without a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except StageError as exc:
        raise SystemExit(f"error: {exc}") from exc
