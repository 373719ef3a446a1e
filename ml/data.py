"""Reading the prepared splits back, the same way in every stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

TARGET = "target"
Task = Literal["classification", "regression"]


def read_split(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Features (float64, in file order) and target of one prepared CSV file."""
    frame = pd.read_csv(path)
    if TARGET not in frame.columns:
        raise ValueError(f"{path} has no '{TARGET}' column")
    features = frame.drop(columns=[TARGET]).astype("float64")
    return features, frame[TARGET]


def task_of(target: pd.Series) -> Task:
    """Numeric targets are regression; class names (strings) are classification."""
    return "regression" if pd.api.types.is_numeric_dtype(target) else "classification"


def as_model_input(features: pd.DataFrame) -> NDArray[Any]:
    """The ONNX model's input: one float32 matrix, columns in feature order."""
    matrix: NDArray[Any] = features.to_numpy(dtype=np.float32)
    return matrix
