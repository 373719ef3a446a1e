"""Stage ``export``: gate the candidate model and write the bundle ``models/<model_name>/``.

Refuses (exit 1, message on stderr) when a metric is below ``export.min_metrics`` or when the
candidate (ONNX or skops, run through the server's runtime) disagrees with scikit-learn beyond
``export.tolerance``.

The bundle depends only on the stage's inputs: no clock, no git. ``git_rev`` and
``created_at`` hold placeholders that ``ml.stamp`` replaces at release/deploy time (neither is
covered by the version hash or the file hashes), so ``dvc repro`` gives byte-identical output
and ``dvc.lock`` stays unchanged for unchanged inputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from app.services.manifest import (
    ClassificationOutput,
    GoldenOutput,
    GoldenPair,
    OutputSpec,
    RegressionOutput,
)
from app.services.runtimes import RawOutput
from ml import histograms
from ml.agreement import DisagreementError, check_agreement
from ml.bundle import UNSTAMPED_REV, UNSTAMPED_TIME, build_manifest, write_bundle
from ml.candidate import read_candidate
from ml.data import read_split, records
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
    # Bins of the numeric reference histograms (drift).
    histogram_bins: int = Field(default=histograms.DEFAULT_BINS, ge=2, le=100)


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


def output_spec(reference: SklearnReference) -> OutputSpec:
    if reference.task == "classification":
        return ClassificationOutput(classes=reference.classes or [])
    return RegressionOutput()


def golden_pairs(
    features: pd.DataFrame, outputs: RawOutput, output: OutputSpec, count: int
) -> list[GoldenPair]:
    pairs = []
    for row, record in enumerate(records(features.iloc[:count])):
        if isinstance(output, ClassificationOutput):
            assert outputs.probabilities is not None
            result = GoldenOutput(
                prediction=str(outputs.predictions[row]),
                probabilities={
                    cls: float(p)
                    for cls, p in zip(output.classes, outputs.probabilities[row], strict=True)
                },
            )
        else:
            result = GoldenOutput(prediction=float(outputs.predictions[row]))
        pairs.append(GoldenPair(input=record, output=result))
    return pairs


def run(params: ExportParams, paths: Paths) -> Path:
    if params.model_name == CANDIDATE_DIRNAME:
        raise ExportError(f"export.model_name may not be '{CANDIDATE_DIRNAME}' (train's output)")
    metrics = json.loads(paths.metrics_file.read_text())
    check_metrics(metrics, params.min_metrics)

    candidate = read_candidate(paths)
    runtime = candidate.runtime()
    x_train, _ = read_split(paths.train_csv)
    x_test, _ = read_split(paths.test_csv)
    test_outputs = runtime.run(records(x_test))
    try:
        diff = check_agreement(
            test_outputs, candidate.reference, params.tolerance, candidate.format
        )
    except DisagreementError as exc:
        raise ExportError(str(exc)) from exc
    log.info("%s agrees with scikit-learn: max |diff| %.3g", candidate.format, diff)

    output = output_spec(candidate.reference)
    classes = output.classes if isinstance(output, ClassificationOutput) else None
    reference = histograms.reference(
        {str(name): x_train[name].tolist() for name in x_train.columns},
        candidate.features,
        runtime.run(records(x_train)).predictions,
        classes,
        params.histogram_bins,
    )
    model_file = f"model.{candidate.format}"
    manifest = build_manifest(
        name=params.model_name,
        fmt=candidate.reference.format,
        model_file=model_file,
        model=candidate.model,
        features=candidate.features,
        output=output,
        metrics=metrics,
        golden=golden_pairs(x_test, test_outputs, output, params.golden_count),
        reference=reference,
        git_rev=UNSTAMPED_REV,
        created_at=UNSTAMPED_TIME,
    )
    target = write_bundle(
        paths.bundle_dir(params.model_name), {model_file: candidate.model}, manifest
    )
    log.info("wrote bundle %s version %s (%s)", target, manifest.version, candidate.format)
    return target


def main(paths: Paths | None = None) -> Path:
    paths = paths or Paths()
    return run(load_section(paths.params_file, "export", ExportParams), paths)


if __name__ == "__main__":
    cli(main)
