"""GET /v1/batch/latest: the last good results, and `stale` after two missed intervals."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.routes import batch
from tests.unit.jobs.batchkit import drop_csv, make_job

T0 = 1_800_000_000.0


def client_for(state_dir: Path, now: float) -> TestClient:
    app = FastAPI()
    app.include_router(batch.router)
    app.dependency_overrides[batch.get_batch_state_dir] = lambda: state_dir
    app.dependency_overrides[batch.get_clock] = lambda: now
    return TestClient(app)


def test_no_results_yet_is_a_clear_404(tmp_path: Path) -> None:
    answer = client_for(tmp_path / "state", T0).get("/v1/batch/latest")
    assert answer.status_code == 404
    assert "no batch results yet" in answer.json()["detail"]


def test_latest_results_turn_stale_after_two_missed_intervals(
    tmp_path: Path, bundle_dir: Path
) -> None:
    drop_csv(tmp_path / "incoming", "a.csv", bundle_dir, 8, 0)
    clock = [T0]
    job = make_job(tmp_path, bundle_dir, clock=lambda: clock[0])
    result = job.run()
    fresh = client_for(tmp_path / "state", T0 + 599).get("/v1/batch/latest?limit=3").json()
    assert fresh["stale"] is False
    assert fresh["batch_id"] == result.batch_id and fresh["rows"] == 8
    assert fresh["model_version"] == job.models.get().version
    assert len(fresh["results"]) == 3 and fresh["results"][0]["origin"] == "a.csv:0"
    stale = client_for(tmp_path / "state", T0 + 601).get("/v1/batch/latest").json()
    assert stale["stale"] is True and stale["batch_id"] == result.batch_id

    # A run that finds nothing new confirms the results: fresh again, same batch.
    clock[0] = T0 + 900
    job.run()
    again = client_for(tmp_path / "state", T0 + 1000).get("/v1/batch/latest").json()
    assert again["stale"] is False and again["batch_id"] == result.batch_id

    # A failing run (source down) leaves the last good results, which then go stale.
    (tmp_path / "incoming").rename(tmp_path / "gone")
    clock[0] = T0 + 1200
    with contextlib.suppress(Exception):
        job.run()
    later = client_for(tmp_path / "state", T0 + 1600).get("/v1/batch/latest").json()
    assert later["stale"] is True and later["batch_id"] == result.batch_id and later["rows"] == 8


def test_the_api_environment_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The API reads SchedulerSettings from berth.env (log level in lower case)."""
    monkeypatch.setenv("BERTH_LOG_LEVEL", "info")
    monkeypatch.setenv("BERTH_BATCH_STATE_DIR", str(tmp_path))
    batch._default_state_dir.cache_clear()
    try:
        assert batch.get_batch_state_dir() == tmp_path
    finally:
        batch._default_state_dir.cache_clear()
