"""Batch scoring: records that arrived since the watermark, scored in chunks with the current
model, written atomically to every sink; only then is the watermark advanced.

Crash safety: before reading, the run records its range (after, upto] and batch id as
``pending`` in the watermark file. A run that finds a pending range redoes exactly that range
under the same id, so its result files are overwritten, not duplicated; records after ``upto``
wait for the next run. A failing source, model or sink leaves watermark and `latest.json` as
they were: the previous results stay published and turn stale after two missed intervals.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app.jobs import metrics
from app.jobs.sinks import Sink, encode
from app.jobs.sources import Batch, Source
from app.jobs.state import (
    Latest,
    Pending,
    Watermark,
    read_latest,
    read_watermark,
    write_latest,
    write_watermark,
)
from app.services.model_store import LoadedModel, load_bundle

if TYPE_CHECKING:  # pyarrow is imported where it is used (see app/jobs/sources.py)
    import pyarrow as pa

log = logging.getLogger("berth.jobs.batch")


class ModelCache:
    """The model of ``bundle_dir``, loaded again only when the link points somewhere new."""

    def __init__(self, bundle_dir: Path) -> None:
        self.bundle_dir = bundle_dir
        self._target: Path | None = None
        self._model: LoadedModel | None = None

    def get(self) -> LoadedModel:
        target = self.bundle_dir.resolve()
        if self._model is None or target != self._target:
            self._model, self._target = load_bundle(self.bundle_dir), target
        return self._model


@dataclass
class RunResult:
    batch_id: str | None
    rows: int
    files: list[str]


def batch_id_for(after: Any, upto: Any) -> str:
    return hashlib.sha256(json.dumps([after, upto], default=str).encode()).hexdigest()[:16]


def score(batch: Batch, model: LoadedModel, chunk_rows: int) -> pa.Table:
    """The source rows' origin, the prediction, class probabilities and an error column."""
    names = model.manifest.feature_names
    present = [name for name in names if name in batch.table.column_names]
    features = batch.table.select(present).to_pylist() if present else []
    numeric = [f.name for f in model.manifest.features if getattr(f, "dtype", None) != "category"]
    for record in features:
        _coerce_numbers(record, numeric)
    features = features or [{} for _ in range(batch.table.num_rows)]
    predictions: list[Any] = [None] * len(features)
    errors: list[str | None] = [None] * len(features)
    probabilities: list[dict[str, float] | None] = [None] * len(features)
    for start in range(0, len(features), chunk_rows):
        chunk = features[start : start + chunk_rows]
        valid_index, valid = _validate(model, chunk, start, errors)
        if not valid:
            continue
        result = model.predict(valid)
        for offset, index in enumerate(valid_index):
            predictions[index] = result.predictions[offset]
            if result.probabilities is not None:
                probabilities[index] = result.probabilities[offset]
    columns: dict[str, Any] = {"origin": batch.origin, "prediction": predictions}
    classes = getattr(model.manifest.output, "classes", None)
    for cls in classes or []:
        columns[f"probability_{cls}"] = [p[cls] if p else None for p in probabilities]
    columns["error"] = errors
    columns["model_version"] = [model.version] * len(features)
    import pyarrow as pa

    return pa.table(columns)


def _coerce_numbers(record: dict[str, Any], names: list[str]) -> None:
    """CSV columns with one bad value are read as text: turn the numeric ones back to numbers,
    so only the bad value fails validation, not its whole column."""
    for name in names:
        value = record.get(name)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                record[name] = float(value)


def _validate(
    model: LoadedModel, chunk: list[dict[str, Any]], start: int, errors: list[str | None]
) -> tuple[list[int], list[dict[str, float]]]:
    """Validate a whole chunk at once; when that fails, row by row to keep the good rows."""
    try:
        return list(range(start, start + len(chunk))), model.validate_records(chunk)
    except ValidationError:
        pass
    index, valid = [], []
    for offset, record in enumerate(chunk):
        try:
            valid.extend(model.validate_records([record]))
            index.append(start + offset)
        except ValidationError as exc:
            errors[start + offset] = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'][1:])}: {err['msg']}" for err in exc.errors()
            )
    return index, valid


class BatchJob:
    def __init__(
        self,
        source: Source,
        sinks: Sequence[Sink],
        models: ModelCache,
        state_dir: Path,
        interval_seconds: float,
        chunk_rows: int = 5000,
        fmt: str = "csv",
        clock: Callable[[], float] = time.time,
        after_write: Callable[[], None] | None = None,
    ) -> None:
        if not sinks:
            raise ValueError("batch scoring needs a local directory or an S3 bucket to write to")
        self.source, self.sinks, self.models = source, sinks, models
        self.state_dir, self.interval_seconds = state_dir, interval_seconds
        self.chunk_rows, self.fmt, self.clock = chunk_rows, fmt, clock
        self.after_write = after_write  # fault injection in tests: crash before the watermark

    def run(self) -> RunResult:
        watermark = read_watermark(self.state_dir)
        pending = watermark.pending
        if pending is None:
            upto = self.source.plan(watermark.position)
            if upto is None:
                self._publish_check(watermark.position)
                return RunResult(None, 0, [])
            pending = Pending(
                batch_id=batch_id_for(watermark.position, upto),
                after=watermark.position,
                upto=upto,
            )
            marked = Watermark(position=watermark.position, pending=pending)
            write_watermark(self.state_dir, marked)
        else:
            log.warning("redoing an unfinished batch", extra={"batch_id": pending.batch_id})
        batch = self.source.read(pending.after, pending.upto)
        model = self.models.get()
        started = time.perf_counter()
        table = score(batch, model, self.chunk_rows)
        scored_in = time.perf_counter() - started
        name = f"results-{pending.batch_id}.{self.fmt}"
        data = encode(table, self.fmt)
        files = [sink.write(name, data) for sink in self.sinks]
        if self.after_write is not None:
            self.after_write()
        now = self.clock()
        write_latest(
            self.state_dir,
            Latest(
                batch_id=pending.batch_id,
                generated_at=now,
                model_name=model.manifest.name,
                model_version=model.version,
                rows=table.num_rows,
                files=files,
                checked_at=now,
                interval_seconds=self.interval_seconds,
            ),
        )
        write_watermark(self.state_dir, Watermark(position=pending.upto, pending=None))
        metrics.BATCH_ROWS_SCORED.inc(table.num_rows)
        self._mark_success(pending.upto)
        log.info(
            "batch scored",
            extra={
                "batch_id": pending.batch_id,
                "rows": table.num_rows,
                "model_version": model.version,
                "rows_per_second": round(table.num_rows / scored_in) if scored_in else None,
                "files": files,
            },
        )
        return RunResult(pending.batch_id, table.num_rows, files)

    def _publish_check(self, position: Any) -> None:
        """Nothing new: the previous results stay, and are confirmed up to date."""
        latest = read_latest(self.state_dir)
        now = self.clock()
        if latest is None:
            latest = Latest(checked_at=now, interval_seconds=self.interval_seconds)
        latest.checked_at, latest.interval_seconds = now, self.interval_seconds
        write_latest(self.state_dir, latest)
        self._mark_success(position)

    def _mark_success(self, position: Any) -> None:
        metrics.BATCH_LAST_SUCCESS.set(self.clock())
        metrics.BATCH_LAG.set(self.source.lag_seconds(position))
