"""Batch scoring from a directory: every record exactly once, also through injected faults."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from app.jobs.sinks import LocalSink
from app.jobs.sources import SourceError
from app.jobs.state import read_latest, read_watermark
from ml.paths import PROJECT_ROOT
from tests.unit.jobs.batchkit import drop_csv, golden_inputs, make_job, result_origins


def test_new_files_are_scored_once_with_the_golden_answers(
    tmp_path: Path, bundle_dir: Path
) -> None:
    expected = drop_csv(tmp_path / "incoming", "a.csv", bundle_dir, 10, 0)
    expected += drop_csv(tmp_path / "incoming", "b.csv", bundle_dir, 5, 10)
    job = make_job(tmp_path, bundle_dir)
    first = job.run()
    assert first.rows == 15
    assert sorted(result_origins(tmp_path / "results")) == sorted(expected)

    again = job.run()  # nothing new: no new file, the old results stay published
    assert again.batch_id is None
    latest = read_latest(tmp_path / "state")
    assert latest is not None and latest.batch_id == first.batch_id and latest.rows == 15

    expected += drop_csv(tmp_path / "incoming", "c.csv", bundle_dir, 3, 15)
    assert job.run().rows == 3
    assert sorted(result_origins(tmp_path / "results")) == sorted(expected)

    with open(tmp_path / "results" / f"results-{first.batch_id}.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    manifest_golden = __import__("json").loads((bundle_dir / "manifest.json").read_text())[
        "golden"
    ]
    assert row["prediction"] == manifest_golden[0]["output"]["prediction"]
    assert row["error"] == ""


def test_bad_rows_get_an_error_and_the_rest_is_scored(tmp_path: Path, bundle_dir: Path) -> None:
    inputs = golden_inputs(bundle_dir)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    names = list(inputs[0])
    lines = [",".join(["id", *names])]
    lines.append(",".join(["1", *(str(inputs[0][n]) for n in names)]))
    lines.append(",".join(["2", "not-a-number", *(str(inputs[0][n]) for n in names[1:])]))
    (incoming / "mixed.csv").write_text("\n".join(lines) + "\n")
    result = make_job(tmp_path, bundle_dir).run()
    with open(tmp_path / "results" / f"results-{result.batch_id}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["error"] == "" and rows[0]["prediction"]
    assert names[0] in rows[1]["error"] and rows[1]["prediction"] == ""


def test_source_down_changes_nothing(tmp_path: Path, bundle_dir: Path) -> None:
    drop_csv(tmp_path / "incoming", "a.csv", bundle_dir, 4, 0)
    job = make_job(tmp_path, bundle_dir)
    job.run()
    before = (tmp_path / "state" / "latest.json").read_bytes(), read_watermark(tmp_path / "state")
    (tmp_path / "incoming").rename(tmp_path / "gone")
    with pytest.raises(SourceError, match="does not exist"):
        job.run()
    after = (tmp_path / "state" / "latest.json").read_bytes(), read_watermark(tmp_path / "state")
    assert after == before


def test_write_interrupted_half_way_leaves_no_partial_result_and_loses_nothing(
    tmp_path: Path, bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = drop_csv(tmp_path / "incoming", "a.csv", bundle_dir, 20, 0)

    def half_then_fail(handle: object, data: bytes) -> None:
        handle.write(data[: len(data) // 2])  # type: ignore[attr-defined]
        handle.flush()  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LocalSink, "_write_all", staticmethod(half_then_fail))
    with pytest.raises(OSError, match="No space left"):
        make_job(tmp_path, bundle_dir).run()
    assert list((tmp_path / "results").iterdir()) == []  # neither final nor temporary file
    assert read_watermark(tmp_path / "state").position is None
    assert read_latest(tmp_path / "state") is None

    monkeypatch.undo()
    expected += drop_csv(tmp_path / "incoming", "b.csv", bundle_dir, 5, 20)
    job = make_job(tmp_path, bundle_dir)
    assert job.run().rows == 20  # the recorded range first: exactly a.csv
    assert job.run().rows == 5
    assert sorted(result_origins(tmp_path / "results")) == sorted(expected)


CHILD = """
import os, signal, sys
from pathlib import Path
from tests.unit.jobs.batchkit import make_job
root, bundle = Path(sys.argv[1]), Path(sys.argv[2])
job = make_job(root, bundle, after_write=lambda: os.kill(os.getpid(), signal.SIGKILL))
job.run()
"""


def test_killed_between_write_and_watermark_duplicates_nothing(
    tmp_path: Path, bundle_dir: Path
) -> None:
    expected = drop_csv(tmp_path / "incoming", "a.csv", bundle_dir, 12, 0)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(bundle_dir)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr
    written = list((tmp_path / "results").glob("results-*.csv"))
    assert len(written) == 1  # the results were written, the watermark was not advanced
    watermark = read_watermark(tmp_path / "state")
    assert watermark.position is None and watermark.pending is not None

    expected += drop_csv(tmp_path / "incoming", "b.csv", bundle_dir, 4, 12)
    job = make_job(tmp_path, bundle_dir)
    redo = job.run()
    assert redo.rows == 12 and redo.batch_id == watermark.pending.batch_id
    assert job.run().rows == 4
    origins = result_origins(tmp_path / "results")
    assert len(origins) == len(set(origins)) == 16
    assert sorted(origins) == sorted(expected)


def test_files_being_written_or_too_fresh_wait(tmp_path: Path, bundle_dir: Path) -> None:
    incoming = tmp_path / "incoming"
    drop_csv(incoming, "a.csv", bundle_dir, 2, 0)
    (incoming / ".b.csv.part").write_text("id\n1\n")
    job = make_job(tmp_path, bundle_dir)
    job.source.settle_seconds = 3600  # type: ignore[attr-defined]
    assert job.run().batch_id is None
    job.source.settle_seconds = 0  # type: ignore[attr-defined]
    assert job.run().rows == 2


def test_cleanup_batch_removes_only_old_scored_inputs_and_unpublished_results(
    tmp_path: Path, bundle_dir: Path
) -> None:
    import time

    from app.core.config import SchedulerSettings
    from app.jobs.cleanup import cleanup_batch

    incoming = tmp_path / "incoming"
    drop_csv(incoming, "a.csv", bundle_dir, 3, 0)
    job = make_job(tmp_path, bundle_dir)
    first = job.run()
    drop_csv(incoming, "b.csv", bundle_dir, 3, 3)
    second = job.run()
    drop_csv(incoming, "c.csv", bundle_dir, 3, 6)  # not scored yet
    later = time.time() + 40 * 86400  # a clock 40 days ahead (touching files would move ctime)
    config = SchedulerSettings(
        batch_incoming_dir=incoming,
        batch_output_dir=tmp_path / "results",
        batch_state_dir=tmp_path / "state",
        cleanup_batch_max_age_days=30,
    )
    outcome = cleanup_batch(config, lambda: later, dry_run=False)
    assert {p.name for p in outcome.removed} == {"a.csv", "b.csv", f"results-{first.batch_id}.csv"}
    assert {p.name for p in incoming.iterdir()} == {"c.csv"}
    assert [p.name for p in (tmp_path / "results").iterdir()] == [f"results-{second.batch_id}.csv"]
