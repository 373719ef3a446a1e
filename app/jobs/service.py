"""The long-running scheduler (``python -m app.jobs serve``, systemd unit berth-scheduler).

APScheduler 3 with a SQLite job store: each job's next run time is stored, so after a restart
a run that fell due while the service was down runs once (coalesced), if it is not older than
the misfire grace time. A job whose cron entry is unchanged keeps its stored next run time;
a changed entry replaces it; jobs no longer configured are removed.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from app.core.config import SchedulerSettings
from app.jobs import metrics
from app.jobs.cleanup import CLEANUP_JOBS
from app.jobs.runner import BATCH_JOB, DISK_JOB, cron_trigger, use_settings

log = logging.getLogger("berth.jobs")
JOB_FUNC = "app.jobs.runner:scheduled"


def schedules(config: SchedulerSettings) -> dict[str, str]:
    """Job name -> cron entry."""
    entries = dict.fromkeys(CLEANUP_JOBS, config.cleanup_schedule)
    entries[DISK_JOB] = config.cleanup_disk_check_schedule
    entries[BATCH_JOB] = config.batch_schedule
    return entries


def build_scheduler(config: SchedulerSettings) -> BackgroundScheduler:
    config.scheduler_jobstore.parent.mkdir(parents=True, exist_ok=True)
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{config.scheduler_jobstore}")},
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": config.scheduler_misfire_grace_seconds,
        },
        timezone=config.scheduler_timezone,
    )
    scheduler.add_listener(_count_missed, EVENT_JOB_MISSED)
    return scheduler


def _count_missed(event: JobExecutionEvent) -> None:
    metrics.JOB_RUNS.labels(event.job_id, "missed").inc()
    log.warning("run missed (past the misfire grace time)", extra={"job": event.job_id})


def reconcile(scheduler: BackgroundScheduler, config: SchedulerSettings) -> dict[str, str]:
    """Make the (paused) scheduler's stored jobs match the configuration; returns what was done."""
    wanted = schedules(config)
    actions = {}
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            scheduler.remove_job(job.id)
            actions[job.id] = "removed"
    for name, entry in wanted.items():
        trigger = cron_trigger(entry, config.scheduler_timezone)
        job = scheduler.get_job(name)
        options: dict[str, Any] = {
            "misfire_grace_time": config.scheduler_misfire_grace_seconds,
            "coalesce": True,
            "max_instances": 1,
        }
        if job is not None and str(job.trigger) == str(trigger) and job.args == (name,):
            if job.misfire_grace_time != options["misfire_grace_time"]:
                job.modify(**options)
            actions[name] = "kept"
            continue
        scheduler.add_job(
            JOB_FUNC, trigger, args=[name], id=name, name=name, replace_existing=True, **options
        )
        actions[name] = "added" if job is None else "rescheduled"
    return actions


def serve(config: SchedulerSettings, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set)."""
    use_settings(config)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    metrics.initialise(schedules(config), CLEANUP_JOBS)
    if config.scheduler_metrics_port:
        metrics.serve(config.scheduler_metrics_host, config.scheduler_metrics_port)
    scheduler = build_scheduler(config)
    scheduler.start(paused=True)
    actions = reconcile(scheduler, config)
    scheduler.resume()  # runs that fell due while we were down are processed now
    log.info(
        "scheduler started",
        extra={
            "jobs": {
                job.id: {"action": actions.get(job.id), "next_run": str(job.next_run_time)}
                for job in scheduler.get_jobs()
            },
            "metrics": f"{config.scheduler_metrics_host}:{config.scheduler_metrics_port}",
        },
    )
    stop.wait()
    log.info("scheduler stopping; waiting for running jobs")
    scheduler.shutdown(wait=True)
