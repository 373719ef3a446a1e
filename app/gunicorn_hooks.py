"""Gunicorn server hooks, imported by ``/etc/berth/gunicorn.conf.py``.

Kept in the app (not the template) so they are tested and versioned with the metrics code. The
master imports this module: it must not create metrics, or the master would write samples too.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import multiprocess

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: drop its live gauges (in-flight requests) from the merged metrics."""
    path = os.environ.get(MULTIPROC_DIR_ENV)
    if path:
        multiprocess.mark_process_dead(worker.pid, path)  # type: ignore[no-untyped-call]


def on_starting(server: Any) -> None:
    """The master starts: empty the multiprocess directory, so no sample of an earlier run
    survives (systemd's RuntimeDirectory= does this too; this covers runs outside systemd)."""
    path = os.environ.get(MULTIPROC_DIR_ENV)
    if path and os.path.isdir(path):
        for entry in os.scandir(path):
            if entry.name.endswith(".db") and entry.is_file():
                os.unlink(entry.path)
