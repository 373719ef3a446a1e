"""The scheduler: cron entries read with a fixed clock, the stored job set kept in step with the
configuration, and runs missed while the service was down caught up once after a restart."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

from app.core.config import SchedulerSettings
from app.jobs import metrics, runner, service

FIXED = datetime(2026, 3, 1, 12, 2, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("entry", "seconds"),
    [("*/5 * * * *", 300), ("17 3 * * *", 86400), ("0 */6 * * *", 21600), ("* * * * *", 60)],
)
def test_interval_of_a_cron_entry(entry: str, seconds: float) -> None:
    assert runner.interval_seconds(entry, "UTC", now=FIXED) == seconds


def test_next_runs_follow_the_configured_entry_on_a_fixed_clock() -> None:
    trigger = runner.cron_trigger("*/5 * * * *", "UTC")
    first = trigger.get_next_fire_time(None, FIXED)
    assert first == datetime(2026, 3, 1, 12, 5, tzinfo=timezone.utc)
    assert trigger.get_next_fire_time(first, first + timedelta(seconds=1)) == first + timedelta(
        minutes=5
    )


def test_a_bad_cron_entry_says_what_to_write() -> None:
    with pytest.raises(ValueError, match=r"bad cron entry '\*/5 \* \*'.*five fields"):
        runner.cron_trigger("*/5 * *", "UTC")


def config_for(tmp_path: Path, **extra: object) -> SchedulerSettings:
    values: dict[str, object] = {
        "scheduler_jobstore": tmp_path / "scheduler.sqlite",
        "scheduler_metrics_port": 0,
        "scheduler_misfire_grace_seconds": 600,
        "cleanup_schedule": "* * * * *",
        "cleanup_disk_check_schedule": "0 0 1 1 *",
        "batch_schedule": "0 0 1 1 *",
        "cleanup_models_root": tmp_path / "srv" / "models",
        "cleanup_releases_root": tmp_path / "srv" / "releases",
        "cleanup_releases_current": tmp_path / "srv" / "current",
        "cleanup_log_dirs": [tmp_path / "log" / "berth"],
    }
    values.update(extra)
    return SchedulerSettings(**values)  # type: ignore[arg-type]


def test_reconcile_keeps_unchanged_jobs_and_their_next_run(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    first = service.build_scheduler(config)
    first.start(paused=True)
    assert set(service.reconcile(first, config).values()) == {"added"}
    first.add_job("app.jobs.runner:scheduled", "interval", args=["gone"], id="old-job")
    job = first.get_job("batch-score")
    assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 600
    kept_next = first.get_job("cleanup-logs").next_run_time
    first.shutdown(wait=False)

    changed = config_for(tmp_path, batch_schedule="*/5 * * * *")
    second = service.build_scheduler(changed)
    second.start(paused=True)
    actions = service.reconcile(second, changed)
    assert actions["old-job"] == "removed"
    assert actions["batch-score"] == "rescheduled"
    assert actions["cleanup-logs"] == "kept"
    assert second.get_job("cleanup-logs").next_run_time == kept_next
    assert {job.id for job in second.get_jobs()} == set(runner.JOB_NAMES)
    second.shutdown(wait=False)


def runs(job: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "berth_job_runs_total", {"job": job, "outcome": outcome}
    )
    return value or 0.0


def test_runs_missed_while_down_run_once_after_restart_within_grace(tmp_path: Path) -> None:
    if datetime.now(timezone.utc).second > 50:  # keep clear of the next natural minute run
        time.sleep(61 - datetime.now(timezone.utc).second)
    config = config_for(tmp_path)
    runner.use_settings(config)
    before = service.build_scheduler(config)
    before.start(paused=True)
    service.reconcile(before, config)
    before.shutdown(wait=True)
    # The service was down: leftovers missed 4 minutely runs, the latest within the grace time;
    # the yearly disk check missed one run 20 minutes ago, past the grace time.
    # Written straight into the job store, as if time had passed with no process running.
    store = SQLAlchemyJobStore(url=f"sqlite:///{config.scheduler_jobstore}")
    store.start(before, "default")
    now = datetime.now(timezone.utc)
    for job_id, missed_by in (("cleanup-leftovers", 210), ("disk-pressure", 1200)):
        job = store.lookup_job(job_id)
        assert job is not None
        job.next_run_time = now - timedelta(seconds=missed_by)
        store.update_job(job)
    store.shutdown()
    counts = {job: (runs(job, "success"), runs(job, "missed")) for job in runner.JOB_NAMES}

    after = service.build_scheduler(config)
    after.start(paused=True)
    assert service.reconcile(after, config)["cleanup-leftovers"] == "kept"
    after.resume()
    deadline = time.monotonic() + 10
    while runs("cleanup-leftovers", "success") == counts["cleanup-leftovers"][0]:
        assert time.monotonic() < deadline, "the missed run did not happen after the restart"
        time.sleep(0.05)
    time.sleep(0.5)
    after.shutdown(wait=True)
    assert runs("cleanup-leftovers", "success") == counts["cleanup-leftovers"][0] + 1  # coalesced
    assert runs("disk-pressure", "success") == counts["disk-pressure"][0]  # past the grace time
    assert runs("disk-pressure", "missed") == counts["disk-pressure"][1] + 1
    for job in ("cleanup-logs", "cleanup-models", "cleanup-releases", "batch-score"):
        assert runs(job, "success") == counts[job][0]


def test_every_cleanup_series_exists_at_zero_before_any_run() -> None:
    """Dashboards plot increase() of the cleanup counters; a series must exist before the first
    cleanup frees anything, or the panel shows "no data" instead of 0."""
    name = "test-cleanup-never-run"
    assert (
        metrics.REGISTRY.get_sample_value("berth_cleanup_bytes_freed_total", {"job": name}) is None
    )
    metrics.initialise(["test-job-never-run"], [name])
    assert metrics.REGISTRY.get_sample_value("berth_cleanup_bytes_freed_total", {"job": name}) == 0
    assert (
        metrics.REGISTRY.get_sample_value("berth_cleanup_items_removed_total", {"job": name}) == 0
    )
    for outcome in ("success", "failure", "missed"):
        labels = {"job": "test-job-never-run", "outcome": outcome}
        assert metrics.REGISTRY.get_sample_value("berth_job_runs_total", labels) == 0
