"""Run one job by name, with its metrics and log line; the scheduler and the CLI both come here."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.cron import CronTrigger

from app.core.config import SchedulerSettings
from app.jobs import metrics
from app.jobs.cleanup import CLEANUP_JOBS, roots_under_pressure
from app.jobs.safety import Outcome
from app.jobs.state import read_watermark

if TYPE_CHECKING:
    from app.jobs.batch import BatchJob, ModelCache
    from app.jobs.sinks import Sink
    from app.jobs.sources import Source

log = logging.getLogger("berth.jobs")

BATCH_JOB = "batch-score"
DISK_JOB = "disk-pressure"
JOB_NAMES = (*CLEANUP_JOBS, DISK_JOB, BATCH_JOB)

# Cleanups started by their schedule and by the disk-pressure check never overlap.
_cleanup_lock = threading.Lock()
_settings: SchedulerSettings | None = None
_models: ModelCache | None = None


def settings() -> SchedulerSettings:
    global _settings
    if _settings is None:
        _settings = SchedulerSettings()
    return _settings


def use_settings(value: SchedulerSettings) -> None:
    global _settings, _models
    _settings, _models = value, None


def cron_trigger(entry: str, tz: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(entry, timezone=tz)
    except ValueError as exc:
        raise ValueError(
            f"bad cron entry {entry!r}: {exc}; give five fields, e.g. '*/5 * * * *'"
        ) from exc


def interval_seconds(entry: str, tz: str, now: datetime | None = None) -> float:
    """Seconds between the next two runs of a cron entry (the batch interval)."""
    trigger = cron_trigger(entry, tz)
    now = now or datetime.now(timezone.utc)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    if first is None or second is None:
        raise ValueError(f"cron entry {entry!r} does not repeat")
    return float((second - first).total_seconds())


def build_batch_job(config: SchedulerSettings, **overrides: Any) -> BatchJob:
    # Imported here: the model runtime and pyarrow cost tens of MB, and cleanups need neither.
    from app.jobs.batch import BatchJob, ModelCache
    from app.jobs.sinks import LocalSink, S3Sink
    from app.jobs.sources import DirectorySource, PostgresSource

    global _models
    source: Source
    if config.batch_source == "postgres":
        if config.batch_postgres_dsn is None:
            raise ValueError("BERTH_BATCH_SOURCE=postgres needs BERTH_BATCH_POSTGRES_DSN")
        source = PostgresSource(
            config.batch_postgres_dsn.get_secret_value(),
            config.batch_postgres_query,
            config.batch_postgres_watermark_column,
            config.batch_max_rows,
        )
    else:
        source = DirectorySource(
            config.batch_incoming_dir, config.batch_max_files, config.batch_settle_seconds
        )
    sinks: list[Sink] = []
    if config.batch_output_local:
        sinks.append(LocalSink(config.batch_output_dir))
    if config.batch_s3_bucket:
        sinks.append(
            S3Sink(config.batch_s3_bucket, config.batch_s3_prefix, config.batch_s3_endpoint_url)
        )
    if _models is None or _models.bundle_dir != config.model_dir:
        _models = ModelCache(config.model_dir)
    options: dict[str, Any] = {
        "source": source,
        "sinks": sinks,
        "models": _models,
        "state_dir": config.batch_state_dir,
        "interval_seconds": interval_seconds(config.batch_schedule, config.scheduler_timezone),
        "chunk_rows": config.batch_chunk_rows,
        "fmt": config.batch_output_format,
    }
    options.update(overrides)
    return BatchJob(**options)


def _record_cleanup(name: str, outcome: Outcome) -> dict[str, Any]:
    if not outcome.dry_run:
        metrics.CLEANUP_BYTES_FREED.labels(name).inc(outcome.bytes_freed)
        metrics.CLEANUP_ITEMS_REMOVED.labels(name).inc(len(outcome.removed))
    return {
        "dry_run": outcome.dry_run,
        "removed": [str(path) for path in outcome.removed],
        "kept": [str(path) for path in outcome.kept],
        "bytes_freed": outcome.bytes_freed,
    }


def _cleanup(name: str, dry_run: bool) -> dict[str, Any]:
    with _cleanup_lock:
        return _record_cleanup(name, CLEANUP_JOBS[name](settings(), time.time, dry_run))


def _disk_pressure(dry_run: bool) -> dict[str, Any]:
    full = roots_under_pressure(settings())
    if not full:
        return {"full_roots": []}
    roots = [str(path) for path in full]
    log.warning("disk pressure: running every cleanup now", extra={"roots": roots})
    return {
        "full_roots": [str(path) for path in full],
        "cleanups": {name: run_job(name, dry_run) for name in CLEANUP_JOBS},
    }


def _batch(dry_run: bool) -> dict[str, Any]:
    if dry_run:
        job = build_batch_job(settings())
        state = read_watermark(job.state_dir)
        if state.pending is not None:
            return {"dry_run": True, "would_redo": state.pending.model_dump()}
        return {"dry_run": True, "would_score_up_to": job.source.plan(state.position)}
    result = build_batch_job(settings()).run()
    return {"batch_id": result.batch_id, "rows": result.rows, "files": result.files}


def _dispatch(name: str) -> Callable[[bool], dict[str, Any]]:
    if name in CLEANUP_JOBS:
        return lambda dry_run: _cleanup(name, dry_run)
    if name == DISK_JOB:
        return _disk_pressure
    if name == BATCH_JOB:
        return _batch
    raise KeyError(f"unknown job {name!r}; jobs: {', '.join(JOB_NAMES)}")


def run_job(name: str, dry_run: bool = False) -> dict[str, Any]:
    """Run ``name`` once; count the outcome and log one line. Re-raises a failure."""
    job = _dispatch(name)
    started = time.perf_counter()
    try:
        result = job(dry_run)
    except Exception:
        metrics.JOB_RUNS.labels(name, "failure").inc()
        metrics.JOB_DURATION.labels(name).observe(time.perf_counter() - started)
        log.exception("job failed", extra={"job": name})
        raise
    duration = time.perf_counter() - started
    metrics.JOB_DURATION.labels(name).observe(duration)
    metrics.JOB_RUNS.labels(name, "success").inc()
    if not dry_run:
        metrics.JOB_LAST_SUCCESS.labels(name).set(time.time())
    log.info("job done", extra={"job": name, "duration_s": round(duration, 3), "result": result})
    return result


def scheduled(name: str) -> None:
    """Entry point that APScheduler stores by reference (``app.jobs.runner:scheduled``)."""
    run_job(name, dry_run=settings().cleanup_dry_run and name != BATCH_JOB)
