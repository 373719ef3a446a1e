"""Batch results to S3 (moto's server on loopback): same object name on a redo, watermark kept
when the upload fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from app.jobs.batch import BatchJob, ModelCache
from app.jobs.sinks import LocalSink, S3Sink
from app.jobs.sources import DirectorySource
from app.jobs.state import read_latest, read_watermark
from tests.unit.jobs.batchkit import drop_csv


def job_for(tmp_path: Path, bundle_dir: Path, sinks: list[Any], **kw: Any) -> BatchJob:
    return BatchJob(
        source=DirectorySource(tmp_path / "incoming", 100, 0),
        sinks=sinks,
        models=ModelCache(bundle_dir),
        state_dir=tmp_path / "state",
        interval_seconds=300,
        **kw,
    )


def test_results_land_in_s3_and_locally(
    tmp_path: Path, bundle_dir: Path, s3_client: Any, s3_endpoint: str
) -> None:
    s3_client.create_bucket(Bucket="results-both")
    drop_csv(tmp_path / "incoming", "a.csv", bundle_dir, 9, 0)
    sinks = [LocalSink(tmp_path / "results"), S3Sink("results-both", "batch/", s3_endpoint)]
    result = job_for(tmp_path, bundle_dir, sinks, fmt="parquet").run()
    key = f"batch/results-{result.batch_id}.parquet"
    body = s3_client.get_object(Bucket="results-both", Key=key)["Body"].read()
    assert body == (tmp_path / "results" / f"results-{result.batch_id}.parquet").read_bytes()
    latest = read_latest(tmp_path / "state")
    assert latest is not None and f"s3://results-both/{key}" in latest.files


def test_failed_upload_keeps_the_watermark_and_a_redo_overwrites(
    tmp_path: Path, bundle_dir: Path, s3_client: Any, s3_endpoint: str
) -> None:
    drop_csv(tmp_path / "incoming", "a.csv", bundle_dir, 5, 0)
    sink = S3Sink("results-later", "", s3_endpoint)
    with pytest.raises(ClientError, match="NoSuchBucket"):
        job_for(tmp_path, bundle_dir, [sink]).run()
    assert read_watermark(tmp_path / "state").position is None
    s3_client.create_bucket(Bucket="results-later")
    drop_csv(tmp_path / "incoming", "b.csv", bundle_dir, 2, 5)
    job = job_for(tmp_path, bundle_dir, [sink])
    assert job.run().rows == 5
    assert job.run().rows == 2
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket="results-later")["Contents"]]
    assert len(keys) == 2 and all(k.startswith("results-") for k in keys)
