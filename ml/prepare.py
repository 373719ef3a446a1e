"""Stage ``prepare``: load a dataset shipped with scikit-learn and split it deterministically."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn import datasets
from sklearn.model_selection import train_test_split

from ml.data import TARGET, Task, write_schema
from ml.params import load_section
from ml.paths import Paths
from ml.stage import StageError, cli

log = logging.getLogger(__name__)

# name -> (loader, task). Loaders read files bundled with scikit-learn: no downloads.
DATASETS: dict[str, tuple[Callable[..., Any], Task]] = {
    "wine": (datasets.load_wine, "classification"),
    "breast_cancer": (datasets.load_breast_cancer, "classification"),
    "diabetes": (datasets.load_diabetes, "regression"),
}


class PrepareError(StageError):
    """The dataset cannot be prepared with these parameters."""


class PrepareParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: Literal["wine", "breast_cancer", "diabetes"]
    test_size: float = Field(gt=0, lt=1)
    random_state: int
    # Columns (after renaming) to treat as categories: their values become strings.
    categorical: list[str] = Field(default_factory=list)


def column_name(raw: str) -> str:
    """Make a column name a plain identifier: 'od280/od315 of wines' -> 'od280_od315_of_wines'."""
    return re.sub(r"[^0-9a-z]+", "_", raw.lower()).strip("_")


def load_dataset(name: str) -> tuple[pd.DataFrame, Task]:
    """The dataset as one frame: float64 feature columns and a ``target`` column.

    Classification targets are class names (strings), so the API answers with names.
    """
    loader, task = DATASETS[name]
    # diabetes: the original units (age in years, sex 1/2, ...), not the scaled columns.
    bunch = loader(as_frame=True, **({"scaled": False} if name == "diabetes" else {}))
    frame = bunch.data.astype("float64").rename(columns=column_name)
    if task == "classification":
        frame[TARGET] = [str(bunch.target_names[i]) for i in bunch.target]
    else:
        frame[TARGET] = bunch.target.astype("float64")
    return frame, task


def as_category(column: pd.Series) -> pd.Series:
    """Category labels as strings; whole numbers without a decimal part (2.0 -> "2")."""
    return column.map(lambda v: str(int(v)) if float(v).is_integer() else str(v)).astype(object)


def run(params: PrepareParams, paths: Paths) -> None:
    frame, task = load_dataset(params.dataset)
    unknown = sorted(
        set(params.categorical) - set(frame.columns) | {TARGET} & set(params.categorical)
    )
    if unknown:
        raise PrepareError(
            f"prepare.categorical names {unknown}, which are not feature columns of "
            f"{params.dataset}; its columns are {[c for c in frame.columns if c != TARGET]}"
        )
    for name in params.categorical:
        frame[name] = as_category(frame[name])
    train, test = train_test_split(
        frame,
        test_size=params.test_size,
        random_state=params.random_state,
        stratify=frame[TARGET] if task == "classification" else None,
    )
    paths.prepared_dir.mkdir(parents=True, exist_ok=True)
    train.to_csv(paths.train_csv, index=False)
    test.to_csv(paths.test_csv, index=False)
    write_schema(paths.prepared_dir, list(params.categorical))
    log.info("prepared %s: %d train rows, %d test rows", params.dataset, len(train), len(test))


def main(paths: Paths | None = None) -> None:
    paths = paths or Paths()
    run(load_section(paths.params_file, "prepare", PrepareParams), paths)


if __name__ == "__main__":
    cli(main)
