"""scikit-learn's own outputs on the test split, written by ``train`` and checked by ``export``.

Also records which format ``train`` chose for the candidate and why.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from app.services.manifest import ModelFormat
from ml.data import Task


class SklearnReference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Task
    features: list[str]
    categorical: list[str] = []
    format: ModelFormat = "onnx"
    # Why the candidate is not ONNX (conversion error or disagreement), for skops candidates.
    format_reason: str | None = None
    classes: list[str] | None = None
    predictions: list[str] | list[float]
    probabilities: list[list[float]] | None = None

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=1) + "\n")

    @classmethod
    def read(cls, path: Path) -> SklearnReference:
        return cls.model_validate_json(path.read_text())
