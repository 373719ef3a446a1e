"""Batch scoring state on disk: the watermark (with the run in progress) and `latest.json`,
the pointer to the last good results that `GET /v1/batch/latest` serves.

Both are written whole under a temporary name, fsynced, then renamed: a reader sees the old
file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

WATERMARK_FILE = "watermark.json"
LATEST_FILE = "latest.json"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and a rename (same file system)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


class Pending(BaseModel):
    """A run that chose its records but has not advanced the watermark yet. The next run
    scores exactly this range again under the same batch id, so its outputs are overwritten,
    never duplicated."""

    batch_id: str
    after: Any
    upto: Any


class Watermark(BaseModel):
    position: Any = None
    pending: Pending | None = None


class Latest(BaseModel):
    """The last good results."""

    batch_id: str | None = None
    generated_at: float | None = None
    model_name: str | None = None
    model_version: str | None = None
    rows: int = 0
    files: list[str] = []
    checked_at: float
    interval_seconds: float


def read_watermark(state_dir: Path) -> Watermark:
    path = state_dir / WATERMARK_FILE
    if not path.exists():
        return Watermark()
    return Watermark.model_validate_json(path.read_bytes())


def write_watermark(state_dir: Path, watermark: Watermark) -> None:
    write_atomically(state_dir / WATERMARK_FILE, watermark.model_dump_json().encode())


def read_latest(state_dir: Path) -> Latest | None:
    path = state_dir / LATEST_FILE
    if not path.exists():
        return None
    return Latest.model_validate_json(path.read_bytes())


def write_latest(state_dir: Path, latest: Latest) -> None:
    write_atomically(state_dir / LATEST_FILE, json.dumps(latest.model_dump(), indent=1).encode())
