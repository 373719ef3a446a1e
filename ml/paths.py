"""Where each pipeline stage reads and writes, relative to a project root.

The same paths appear in ``dvc.yaml``; keep the two in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CANDIDATE_DIRNAME = "candidate"


@dataclass(frozen=True)
class Paths:
    """File layout of one pipeline run under ``root`` (the repository, or a test's tmp dir)."""

    root: Path = PROJECT_ROOT

    @property
    def params_file(self) -> Path:
        return self.root / "params.yaml"

    @property
    def prepared_dir(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def train_csv(self) -> Path:
        return self.prepared_dir / "train.csv"

    @property
    def test_csv(self) -> Path:
        return self.prepared_dir / "test.csv"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def candidate_dir(self) -> Path:
        """Output of ``train``: the converted model and scikit-learn's own reference outputs."""
        return self.models_dir / CANDIDATE_DIRNAME

    def candidate_model(self, fmt: str) -> Path:
        """The candidate's model file: ``model.onnx`` or ``model.skops``."""
        return self.candidate_dir / f"model.{fmt}"

    @property
    def candidate_reference(self) -> Path:
        return self.candidate_dir / "sklearn_reference.json"

    @property
    def metrics_file(self) -> Path:
        return self.root / "reports" / "metrics.json"

    def bundle_dir(self, model_name: str) -> Path:
        return self.models_dir / model_name
