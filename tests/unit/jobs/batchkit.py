"""Shared helpers for batch scoring tests: input files built from the bundle's golden inputs."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from app.jobs.batch import BatchJob, ModelCache
from app.jobs.sinks import LocalSink, Sink
from app.jobs.sources import DirectorySource


def golden_inputs(bundle_dir: Path) -> list[dict[str, Any]]:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    return [pair["input"] for pair in manifest["golden"]]


def drop_csv(incoming: Path, name: str, bundle_dir: Path, rows: int, start_id: int) -> list[str]:
    """Write ``rows`` records as a CSV under a dot name, then rename it in (as operators do)."""
    inputs = golden_inputs(bundle_dir)
    incoming.mkdir(parents=True, exist_ok=True)
    tmp = incoming / f".{name}"
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", *inputs[0]])
        writer.writeheader()
        for i in range(rows):
            writer.writerow({"id": start_id + i, **inputs[i % len(inputs)]})
    os.replace(tmp, incoming / name)
    return [f"{name}:{row}" for row in range(rows)]


def make_job(
    root: Path, bundle_dir: Path, sinks: list[Sink] | None = None, **options: Any
) -> BatchJob:
    return BatchJob(
        source=DirectorySource(root / "incoming", max_files=100, settle_seconds=0),
        sinks=sinks if sinks is not None else [LocalSink(root / "results")],
        models=ModelCache(bundle_dir),
        state_dir=root / "state",
        interval_seconds=300,
        chunk_rows=7,
        **options,
    )


def result_origins(results: Path) -> list[str]:
    """Every row origin in every (complete) result file."""
    origins: list[str] = []
    for path in sorted(results.glob("results-*.csv")):
        with open(path, newline="") as handle:
            origins.extend(row["origin"] for row in csv.DictReader(handle))
    return origins
