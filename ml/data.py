"""Reading the prepared splits back, the same way in every stage.

``prepare`` writes ``schema.json`` next to the CSV files: which columns are categorical. Those
come back as strings; every other feature as float64.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd

TARGET = "target"
SCHEMA_FILENAME = "schema.json"
Task = Literal["classification", "regression"]


def write_schema(prepared_dir: Path, categorical: list[str]) -> None:
    (prepared_dir / SCHEMA_FILENAME).write_text(
        json.dumps({"categorical": categorical}, indent=1) + "\n"
    )


def categorical_columns(prepared_dir: Path) -> list[str]:
    path = prepared_dir / SCHEMA_FILENAME
    if not path.exists():
        return []
    names: list[str] = json.loads(path.read_text())["categorical"]
    return names


def read_split(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Features (in file order; categorical ones as str, the rest float64) and target."""
    categorical = categorical_columns(path.parent)
    frame = pd.read_csv(path, dtype=dict.fromkeys(categorical, str), keep_default_na=False)
    if TARGET not in frame.columns:
        raise ValueError(f"{path} has no '{TARGET}' column")
    features = frame.drop(columns=[TARGET])
    for name in features.columns:
        features[name] = (
            features[name].astype(object)
            if name in categorical
            else features[name].astype("float64")
        )
    return features, frame[TARGET]


def task_of(target: pd.Series) -> Task:
    """Numeric targets are regression; class names (strings) are classification."""
    return "regression" if pd.api.types.is_numeric_dtype(target) else "classification"


def records(features: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as records keyed by feature name, with plain Python values (what the API gets)."""
    categorical = {n for n in features.columns if features[n].dtype == object}
    return [
        {str(k): (str(v) if k in categorical else float(v)) for k, v in row.items()}
        for row in features.to_dict("records")
    ]
