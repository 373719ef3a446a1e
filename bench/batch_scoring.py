"""Rows per second of batch scoring with the example model (figures, not pass/fail).

    python bench/batch_scoring.py [--rows 100000] [--chunk 5000] [--bundle models/wine-classifier]

Prints the scoring rate alone (validate + predict, the model's own work) and end to end
(read CSV, score, write CSV atomically, advance the watermark).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from pathlib import Path

from app.jobs.batch import BatchJob, ModelCache, score
from app.jobs.sinks import LocalSink
from app.jobs.sources import Batch, DirectorySource


def write_input(path: Path, bundle: Path, rows: int) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    features = manifest["features"]
    rng = random.Random(7)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *(f["name"] for f in features)])
        for i in range(rows):
            writer.writerow([i, *(round(rng.uniform(f["min"], f["max"]), 3) for f in features)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5000)
    parser.add_argument("--bundle", type=Path, default=Path("models/wine-classifier"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "incoming").mkdir()
        write_input(root / "incoming" / "bench.csv", args.bundle, args.rows)
        models = ModelCache(args.bundle)
        source = DirectorySource(root / "incoming", 100, 0)
        job = BatchJob(
            source, [LocalSink(root / "results")], models, root / "state", 300, args.chunk
        )
        model = models.get()
        upto = source.plan(None)
        batch = source.read(None, upto)
        score(Batch(batch.table.slice(0, 10), batch.origin[:10]), model, 10)
        started = time.perf_counter()  # after a warm-up: first calls import lazily
        score(batch, model, args.chunk)
        scoring = time.perf_counter() - started
        started = time.perf_counter()
        result = job.run()
        end_to_end = time.perf_counter() - started
    print(f"model {model.manifest.name} {model.version}, {args.rows} rows, chunks of {args.chunk}")
    print(f"scoring only : {args.rows / scoring:10.0f} rows/s ({scoring:.2f} s)")
    print(f"end to end   : {result.rows / end_to_end:10.0f} rows/s ({end_to_end:.2f} s)")


if __name__ == "__main__":
    main()
