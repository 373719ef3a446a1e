"""Gunicorn server hooks, imported by ``/etc/berth/gunicorn.conf.py``.

Kept in the app (not the template) so they are tested and versioned with the metrics code. The
master imports this module: it must not create metrics, or the master would write samples too.
"""

from __future__ import annotations

import os
import sys
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


# Process-wide settings made when the Gunicorn master imports this module, so every worker
# forked from it inherits them (workers import numpy/onnxruntime after the fork: preload_app is
# off).
#
# Seconds a thread may hold the GIL while another waits for it (CPython's default is 5 ms). An
# inference thread that finished its model call waits up to that long for the event loop's
# thread to let go; with many requests in flight those waits pile up into the tail latency.
SWITCH_INTERVAL_SECONDS = 0.0005
# One OpenMP/BLAS thread per worker: with several workers, library thread pools sized to the
# CPU count fight over the cores (p99 latencies near a second even at concurrency 1).
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def configure_process() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    for name in THREAD_ENV:
        os.environ.setdefault(name, "1")  # an operator's explicit value wins


configure_process()
