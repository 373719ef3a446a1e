from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml import prepare
from ml.data import TARGET, read_split, task_of
from ml.params import ParamsError, load_section
from ml.paths import Paths
from tests.unit.conftest import make_root


def test_column_name_makes_plain_identifiers() -> None:
    assert prepare.column_name("od280/od315_of_diluted_wines") == "od280_od315_of_diluted_wines"
    assert prepare.column_name("mean radius") == "mean_radius"


def test_prepare_splits_deterministically(tmp_path: Path) -> None:
    first, second = make_root(tmp_path / "a"), make_root(tmp_path / "b")
    prepare.main(first)
    prepare.main(second)
    assert first.train_csv.read_bytes() == second.train_csv.read_bytes()
    assert first.test_csv.read_bytes() == second.test_csv.read_bytes()


def test_prepare_writes_named_classes_and_split_sizes(pipeline: Paths) -> None:
    x_train, y_train = read_split(pipeline.train_csv)
    x_test, y_test = read_split(pipeline.test_csv)
    assert len(x_train) + len(x_test) == 178  # wine
    assert len(x_test) == 45  # 25 %
    assert set(y_train) == {"class_0", "class_1", "class_2"}
    assert task_of(y_test) == "classification"
    assert all(name.isidentifier() for name in x_train.columns)
    assert TARGET not in x_train.columns


def test_prepare_regression_dataset_has_numeric_target(tmp_path: Path) -> None:
    paths = make_root(
        tmp_path, prepare={"dataset": "diabetes", "test_size": 0.2, "random_state": 1}
    )
    prepare.main(paths)
    _, target = read_split(paths.test_csv)
    assert task_of(target) == "regression"
    assert pd.api.types.is_float_dtype(target)


def test_params_section_is_validated(tmp_path: Path) -> None:
    paths = make_root(tmp_path, prepare={"dataset": "iris-download", "test_size": 0.2})
    with pytest.raises(ParamsError, match="section 'prepare' is invalid"):
        load_section(paths.params_file, "prepare", prepare.PrepareParams)


def test_missing_params_section_is_reported(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("train: {}\n")
    with pytest.raises(ParamsError, match="no 'prepare' section"):
        load_section(tmp_path / "params.yaml", "prepare", prepare.PrepareParams)
