"""Stage ``export``: gate the candidate model and write the bundle ``models/<model_name>/``.

Refuses (exit 1, message on stderr) when a metric is below ``export.min_metrics`` or when the
ONNX model disagrees with scikit-learn beyond ``export.tolerance``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from app.services.manifest import (
    ClassificationOutput,
    FeatureSpec,
    GoldenOutput,
    GoldenPair,
    OutputSpec,
    RegressionOutput,
)
from ml.bundle import MODEL_FILENAME, build_manifest, git_revision, write_bundle
from ml.data import as_model_input, read_split
from ml.onnx_model import OnnxOutputs, run_onnx
from ml.params import load_section
from ml.paths import CANDIDATE_DIRNAME, Paths
from ml.reference import SklearnReference
from ml.stage import StageError, cli

log = logging.getLogger(__name__)


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    min_metrics: dict[str, float] = Field(min_length=1)
    tolerance: float = Field(gt=0, le=0.01)
    golden_count: int = Field(ge=1, le=50)


class ExportError(StageError):
    """The candidate model must not become a bundle."""


def check_metrics(metrics: dict[str, float], minimums: dict[str, float]) -> None:
    failures = []
    for name, minimum in sorted(minimums.items()):
        if name not in metrics:
            raise ExportError(
                f"export.min_metrics names '{name}' but the evaluation reported only "
                f"{sorted(metrics)}; fix params.yaml"
            )
        if metrics[name] < minimum:
            failures.append(f"{name} = {metrics[name]:.4f} is below the minimum {minimum}")
    if failures:
        raise ExportError(
            "model refused: " + "; ".join(failures) + ". Improve the model, or change "
            "export.min_metrics in params.yaml deliberately."
        )


def check_agreement(onnx: OnnxOutputs, reference: SklearnReference, tolerance: float) -> None:
    """The ONNX model must give scikit-learn's answers on the test split."""
    expected = reference.predictions
    if reference.task == "classification":
        mismatches = int(np.sum(onnx.predictions.astype(str) != np.asarray(expected, dtype=str)))
        if mismatches:
            raise ExportError(
                f"ONNX and scikit-learn predict different classes for {mismatches} of "
                f"{len(expected)} test rows; the conversion is wrong for this estimator"
            )
        if onnx.probabilities is None or reference.probabilities is None:
            raise ExportError("a classifier must output probabilities")
        diff = float(np.max(np.abs(onnx.probabilities - np.asarray(reference.probabilities))))
        what = "probabilities"
    else:
        values = np.asarray(expected, dtype=np.float64)
        # Relative for values beyond 1 in magnitude: float32 keeps ~7 significant digits.
        diff = float(np.max(np.abs(onnx.predictions - values) / np.maximum(1.0, np.abs(values))))
        what = "predictions (relative)"
    if not diff <= tolerance:
        raise ExportError(
            f"ONNX {what} differ from scikit-learn's by up to {diff:.3g}, more than "
            f"export.tolerance = {tolerance}; the conversion is not faithful for this estimator"
        )
    log.info("ONNX agrees with scikit-learn: max |diff| %.3g <= %g", diff, tolerance)


def feature_specs(features: pd.DataFrame) -> list[FeatureSpec]:
    return [
        FeatureSpec(
            name=str(name),
            dtype="float64",
            min=float(features[name].min()),
            max=float(features[name].max()),
        )
        for name in features.columns
    ]


def output_spec(reference: SklearnReference) -> OutputSpec:
    if reference.task == "classification":
        return ClassificationOutput(classes=reference.classes or [])
    return RegressionOutput()


def golden_pairs(
    features: pd.DataFrame, onnx: OnnxOutputs, output: OutputSpec, count: int
) -> list[GoldenPair]:
    pairs = []
    for row in range(min(count, len(features))):
        record = {str(name): float(value) for name, value in features.iloc[row].items()}
        if isinstance(output, ClassificationOutput):
            assert onnx.probabilities is not None
            result = GoldenOutput(
                prediction=str(onnx.predictions[row]),
                probabilities={
                    cls: float(p)
                    for cls, p in zip(output.classes, onnx.probabilities[row], strict=True)
                },
            )
        else:
            result = GoldenOutput(prediction=float(onnx.predictions[row]))
        pairs.append(GoldenPair(input=record, output=result))
    return pairs


def run(params: ExportParams, paths: Paths, created_at: datetime | None = None) -> Path:
    if params.model_name == CANDIDATE_DIRNAME:
        raise ExportError(f"export.model_name may not be '{CANDIDATE_DIRNAME}' (train's output)")
    metrics = json.loads(paths.metrics_file.read_text())
    check_metrics(metrics, params.min_metrics)

    model = paths.candidate_model.read_bytes()
    reference = SklearnReference.read(paths.candidate_reference)
    x_train, _ = read_split(paths.train_csv)
    x_test, _ = read_split(paths.test_csv)
    if reference.features != list(x_test.columns):
        raise ExportError("the trained model's features differ from data/prepared; run dvc repro")
    onnx = run_onnx(model, as_model_input(x_test))
    check_agreement(onnx, reference, params.tolerance)

    output = output_spec(reference)
    manifest = build_manifest(
        name=params.model_name,
        model=model,
        features=feature_specs(x_train),
        output=output,
        metrics=metrics,
        golden=golden_pairs(x_test, onnx, output, params.golden_count),
        git_rev=git_revision(paths.root),
        created_at=created_at or datetime.now(timezone.utc),
    )
    target = write_bundle(paths.bundle_dir(params.model_name), {MODEL_FILENAME: model}, manifest)
    log.info("wrote bundle %s version %s", target, manifest.version)
    return target


def main(paths: Paths | None = None) -> Path:
    paths = paths or Paths()
    return run(load_section(paths.params_file, "export", ExportParams), paths)


if __name__ == "__main__":
    cli(main)
