"""Batch scoring from a real PostgreSQL server: pages by the watermark column, exactly once,
also across equal watermark values, a server that goes down and a crash before the watermark."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from app.jobs.batch import BatchJob, ModelCache
from app.jobs.sinks import LocalSink
from app.jobs.sources import PostgresSource, SourceError
from app.jobs.state import read_watermark
from tests.integration.batch.conftest import Postgres, postgres_server


def origins(results: Path) -> list[str]:
    found: list[str] = []
    for path in sorted(results.glob("results-*.csv")):
        with open(path, newline="") as handle:
            found.extend(row["origin"] for row in csv.DictReader(handle))
    return found


def job_for(
    tmp_path: Path, dsn: str, query: str, bundle_dir: Path, column: str = "id", **kw: object
) -> BatchJob:
    return BatchJob(
        source=PostgresSource(dsn, query, column, max_rows=7),
        sinks=[LocalSink(tmp_path / "results")],
        models=ModelCache(bundle_dir),
        state_dir=tmp_path / "state",
        interval_seconds=300,
        chunk_rows=4,
        **kw,  # type: ignore[arg-type]
    )


def test_pages_through_new_rows_exactly_once(
    tmp_path: Path, postgres: Postgres, table: Callable[..., str], bundle_dir: Path
) -> None:
    name = table(18)
    job = job_for(tmp_path, postgres.dsn, f"SELECT * FROM {name}", bundle_dir)
    assert [job.run().rows for _ in range(4)] == [7, 7, 4, 0]
    table(3)
    assert job.run().rows == 3
    assert sorted(origins(tmp_path / "results")) == sorted(f"id={i}" for i in range(1, 22))
    assert read_watermark(tmp_path / "state").position == 21


def test_equal_watermark_values_across_a_page_are_not_lost(
    tmp_path: Path, postgres: Postgres, table: Callable[..., str], bundle_dir: Path
) -> None:
    name = table(5, "2026-01-01T00:00:00+00:00")
    table(6, "2026-01-01T00:00:01+00:00")  # 6 rows with one value: page of 7 must take all
    job = job_for(tmp_path, postgres.dsn, f"SELECT * FROM {name}", bundle_dir, column="arrived")
    assert job.run().rows == 11
    assert job.run().rows == 0
    table(2, "2026-01-01T00:00:02+00:00")
    assert job.run().rows == 2


def test_server_down_then_back_loses_nothing(tmp_path: Path, bundle_dir: Path) -> None:
    with postgres_server() as server:
        server.sql("CREATE TABLE t (id serial PRIMARY KEY, alcohol float)")
        server.sql("INSERT INTO t (alcohol) SELECT 13.0 FROM generate_series(1, 5)")
        job = job_for(tmp_path, server.dsn, "SELECT * FROM t", bundle_dir)
        assert job.run().rows == 5
        server.sql("INSERT INTO t (alcohol) SELECT 13.0 FROM generate_series(1, 3)")
        server.stop()
        before = read_watermark(tmp_path / "state")
        with pytest.raises(SourceError, match="PostgreSQL source failed"):
            job.run()
        assert read_watermark(tmp_path / "state") == before
        server.start()
        assert job.run().rows == 3
        assert sorted(origins(tmp_path / "results")) == sorted(f"id={i}" for i in range(1, 9))


def test_crash_after_write_redoes_the_same_rows_only(
    tmp_path: Path, postgres: Postgres, table: Callable[..., str], bundle_dir: Path
) -> None:
    name = table(5)

    def crash() -> None:
        raise KeyboardInterrupt  # stands for the process dying between write and watermark

    crashing = job_for(
        tmp_path, postgres.dsn, f"SELECT * FROM {name}", bundle_dir, after_write=crash
    )
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    table(4)  # new rows arrive meanwhile: they belong to the next batch, not the redone one
    job = job_for(tmp_path, postgres.dsn, f"SELECT * FROM {name}", bundle_dir)
    assert job.run().rows == 5
    assert job.run().rows == 4
    found = origins(tmp_path / "results")
    assert len(found) == len(set(found)) == 9


def test_an_empty_query_is_refused_with_the_setting_name() -> None:
    with pytest.raises(SourceError, match="BERTH_BATCH_POSTGRES_QUERY"):
        PostgresSource("host=127.0.0.1", "  ", "id", 10)
