"""`python -m app.jobs`: run one job by hand, dry run first; clear errors on bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ml.paths import PROJECT_ROOT
from tests.unit.jobs.batchkit import drop_csv


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    return subprocess.run(
        [sys.executable, "-m", "app.jobs", *args],
        cwd=PROJECT_ROOT,
        env={**clean, "BERTH_LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dry_run_lists_and_real_run_removes(tmp_path: Path) -> None:
    models = tmp_path / "srv" / "models"
    for name, age in (("old", 300), ("mid", 200), ("new", 100)):
        (models / name).mkdir(parents=True)
        os.utime(models / name, (1e9 - age, 1e9 - age))
    (models / "current").symlink_to("old")
    env = {"BERTH_CLEANUP_MODELS_ROOT": str(models), "BERTH_CLEANUP_MODELS_KEEP": "1"}
    dry = cli("run", "cleanup-models", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["removed"] == [str(models / "mid")]
    assert (models / "mid").is_dir()
    logged = [json.loads(line) for line in dry.stderr.splitlines() if line.startswith("{")]
    assert "would remove" in [entry["message"] for entry in logged]  # JSON log lines
    real = cli("run", "cleanup-models", env=env)
    assert json.loads(real.stdout)["removed"] == [str(models / "mid")]
    assert sorted(p.name for p in models.iterdir()) == ["current", "new", "old"]


def test_batch_run_by_hand(tmp_path: Path, bundle_dir: Path) -> None:
    drop_csv(tmp_path / "incoming", "a.csv", bundle_dir, 6, 0)
    env = {
        "BERTH_MODEL_DIR": str(bundle_dir),
        "BERTH_BATCH_INCOMING_DIR": str(tmp_path / "incoming"),
        "BERTH_BATCH_STATE_DIR": str(tmp_path / "state"),
        "BERTH_BATCH_OUTPUT_DIR": str(tmp_path / "results"),
        "BERTH_BATCH_SETTLE_SECONDS": "0",
    }
    done = cli("run", "batch-score", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 6
    assert len(list((tmp_path / "results").glob("results-*.csv"))) == 1


def test_bad_settings_and_failing_jobs_exit_non_zero_with_the_reason(tmp_path: Path) -> None:
    bad = cli("run", "cleanup-logs", env={"BERTH_CLEANUP_DISK_THRESHOLD_PERCENT": "250"})
    assert bad.returncode == 2
    assert "cleanup_disk_threshold_percent" in bad.stderr
    broad = cli("run", "cleanup-models", "--dry-run", env={"BERTH_CLEANUP_MODELS_ROOT": "/"})
    assert broad.returncode == 1
    assert "too broad" in broad.stderr


def test_batch_dry_run_names_the_range_and_scores_nothing(
    tmp_path: Path, bundle_dir: Path
) -> None:
    drop_csv(tmp_path / "incoming", "a.csv", bundle_dir, 2, 0)
    env = {
        "BERTH_MODEL_DIR": str(bundle_dir),
        "BERTH_BATCH_INCOMING_DIR": str(tmp_path / "incoming"),
        "BERTH_BATCH_STATE_DIR": str(tmp_path / "state"),
        "BERTH_BATCH_OUTPUT_DIR": str(tmp_path / "results"),
        "BERTH_BATCH_SETTLE_SECONDS": "0",
    }
    dry = cli("run", "batch-score", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["would_score_up_to"][1] == "a.csv"
    assert not (tmp_path / "results").exists()
    listed = cli("list", env={})
    assert json.loads(listed.stdout)["batch-score"] == "*/5 * * * *"
