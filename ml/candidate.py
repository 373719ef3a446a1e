"""The trained candidate (``models/candidate``) as later stages see it: its format, its
feature schema, and a runtime that predicts exactly the way the server will."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from app.services.manifest import FeatureSpec
from app.services.runtimes import OnnxRuntime, Runtime, SkopsRuntime
from ml.data import read_split
from ml.paths import Paths
from ml.reference import SklearnReference
from ml.stage import StageError


def feature_specs(features: pd.DataFrame, categorical: list[str]) -> list[FeatureSpec]:
    """The manifest's features: numeric ones with their training range, categorical ones with
    the values seen in training."""
    specs = []
    for name in features.columns:
        column = features[name]
        if name in categorical:
            allowed = sorted(set(column.astype(str)))
            specs.append(FeatureSpec(name=str(name), dtype="category", allowed=allowed))
        else:
            specs.append(
                FeatureSpec(
                    name=str(name),
                    dtype="float64",
                    min=float(column.min()),
                    max=float(column.max()),
                )
            )
    return specs


@dataclass(frozen=True)
class Candidate:
    reference: SklearnReference
    model: bytes
    features: list[FeatureSpec]

    @property
    def format(self) -> str:
        return self.reference.format

    def runtime(self) -> Runtime:
        if self.reference.format == "skops":
            return SkopsRuntime(self.model, self.features, self.reference.classes)
        return OnnxRuntime(self.model, self.features)


def read_candidate(paths: Paths) -> Candidate:
    if not paths.candidate_reference.exists():
        raise StageError(f"{paths.candidate_reference} is missing: run the train stage first")
    reference = SklearnReference.read(paths.candidate_reference)
    model_path = paths.candidate_model(reference.format)
    if not model_path.exists():
        raise StageError(f"{model_path} is missing: run the train stage again")
    x_train, _ = read_split(paths.train_csv)
    if reference.features != list(x_train.columns):
        raise StageError("the trained model's features differ from data/prepared; run dvc repro")
    return Candidate(
        reference, model_path.read_bytes(), feature_specs(x_train, reference.categorical)
    )
