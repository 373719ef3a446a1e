"""Stage ``evaluate``: score the candidate in the format it will be served in (ONNX or skops),
through the same runtime the server uses."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score

from ml.candidate import read_candidate
from ml.data import read_split, records, task_of
from ml.paths import Paths
from ml.stage import cli

log = logging.getLogger(__name__)


def compute_metrics(
    y_true: NDArray[Any], y_pred: NDArray[Any], classification: bool
) -> dict[str, float]:
    if classification:
        return {
            "accuracy": round(float(accuracy_score(y_true, y_pred)), 6),
            "f1_macro": round(float(f1_score(y_true, y_pred, average="macro")), 6),
        }
    return {
        "r2": round(float(r2_score(y_true, y_pred)), 6),
        "mae": round(float(mean_absolute_error(y_true, y_pred)), 6),
        "rmse": round(float(np.sqrt(np.mean((y_true - y_pred) ** 2))), 6),
    }


def run(paths: Paths) -> dict[str, float]:
    x_test, y_test = read_split(paths.test_csv)
    outputs = read_candidate(paths).runtime().run(records(x_test))
    classification = task_of(y_test) == "classification"
    y_true = y_test.to_numpy(dtype=object if classification else np.float64)
    y_pred = outputs.predictions.astype(object if classification else np.float64)
    metrics = compute_metrics(y_true, y_pred, classification)
    metrics["n_test"] = len(y_test)
    paths.metrics_file.parent.mkdir(parents=True, exist_ok=True)
    paths.metrics_file.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log.info("metrics: %s", metrics)
    return metrics


def main(paths: Paths | None = None) -> None:
    run(paths or Paths())


if __name__ == "__main__":
    cli(main)
