"""The last good batch scoring results (written by berth-scheduler), flagged when stale."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from app.core.config import SchedulerSettings
from app.jobs.state import read_latest
from app.schemas import ErrorResponse

router = APIRouter(prefix="/v1/batch", tags=["batch"])
# Stale once the scheduler missed this many runs in a row.
MISSED_INTERVALS_STALE = 2


class BatchLatest(BaseModel):
    batch_id: str
    generated_at: datetime = Field(description="When these results were written.")
    checked_at: datetime = Field(description="Last successful run (with or without new rows).")
    model_name: str | None
    model_version: str | None
    rows: int
    stale: bool = Field(
        description="True when the scheduler has missed two runs in a row: the results may "
        "lag behind the incoming records."
    )
    age_seconds: float = Field(description="Seconds since the last successful run.")
    interval_seconds: float
    files: list[str]
    results: list[dict[str, Any]] = Field(description="The first `limit` result rows.")


@lru_cache(maxsize=1)
def _default_state_dir() -> Path:
    return SchedulerSettings().batch_state_dir


def get_batch_state_dir() -> Path:
    return _default_state_dir()


def get_clock() -> float:
    return time.time()


def _read_rows(files: list[str], limit: int) -> list[dict[str, Any]]:
    # Imported here: pyarrow costs each API worker ~45 MB, and few requests come here.
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    local = [Path(name) for name in files if not name.startswith("s3://")]
    if not local or limit == 0:
        return []
    path = local[0]
    table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    rows: list[dict[str, Any]] = table.slice(0, limit).to_pylist()
    return rows


@router.get(
    "/latest",
    responses={404: {"model": ErrorResponse, "description": "No batch results yet."}},
)
def read_latest_batch(
    state_dir: Annotated[Path, Depends(get_batch_state_dir)],
    now: Annotated[float, Depends(get_clock)],
    limit: Annotated[int, Query(ge=0, le=10_000, description="Result rows to include.")] = 100,
) -> BatchLatest:
    """The last good results, their time, the model version that made them, and `stale`."""
    latest = read_latest(state_dir)
    if latest is None or latest.batch_id is None or latest.generated_at is None:
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail="no batch results yet: berth-scheduler writes them after its first batch run "
            "that finds records",
        )
    try:
        results = _read_rows(latest.files, limit)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"the latest results cannot be read: {exc}",
        ) from exc
    age = max(0.0, now - latest.checked_at)
    return BatchLatest(
        batch_id=latest.batch_id,
        generated_at=datetime.fromtimestamp(latest.generated_at, timezone.utc),
        checked_at=datetime.fromtimestamp(latest.checked_at, timezone.utc),
        model_name=latest.model_name,
        model_version=latest.model_version,
        rows=latest.rows,
        stale=age > MISSED_INTERVALS_STALE * latest.interval_seconds,
        age_seconds=round(age, 3),
        interval_seconds=latest.interval_seconds,
        files=latest.files,
        results=results,
    )
