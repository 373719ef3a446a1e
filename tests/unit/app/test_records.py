"""A Batch's shared matrix gives the same model input, fallback keys and drift rows as the
records it holds."""

from __future__ import annotations

import numpy as np

from app.services.fallback import FEW_RECORDS, record_keys
from app.services.records import Batch, matrix

NAMES = ["b", "a", "c"]
RECORDS = [{"b": 2.0, "a": 1, "c": -0.0}, {"b": 0.5, "a": 3.25, "c": 1e300}]


def test_matrix_of_a_batch_equals_the_one_built_from_the_records() -> None:
    batch = Batch(RECORDS, NAMES, numeric=True)
    assert batch == RECORDS  # still the list of records
    for names in (NAMES, ["a"], ["c", "b"], sorted(NAMES)):
        assert np.array_equal(matrix(batch, names), matrix(RECORDS, names))
        assert matrix(batch, names).dtype == np.float64
    assert matrix(batch, NAMES) is matrix(batch, NAMES)  # built once


def test_batch_without_matrix_falls_back_to_the_records() -> None:
    categorical = Batch([{"a": 1.0, "city": "x"}], ["a", "city"], numeric=False)
    assert categorical.columns(["a"]) is None
    assert np.array_equal(matrix(categorical, ["a"]), [[1.0]])
    assert Batch(RECORDS, NAMES, numeric=True).columns(["missing"]) is None


def test_fallback_keys_of_a_batch_match_those_of_plain_records() -> None:
    batch = Batch(RECORDS, NAMES, numeric=True)
    assert record_keys("v1", batch) == record_keys("v1", RECORDS)
    assert record_keys("v1", batch) == [record_keys("v1", [r])[0] for r in RECORDS]
    folded = Batch([{"b": 2.0, "a": 1.0, "c": 0.0}], NAMES, numeric=True)
    assert record_keys("v1", folded)[0] == record_keys("v1", batch)[0]  # -0.0 is 0.0


def test_small_and_large_batches_give_the_same_keys() -> None:
    """Up to FEW_RECORDS records keys are packed row by row, beyond cut from one buffer."""
    many = [
        {"b": i / 3, "a": -i * 1e10, "c": -0.0 if i % 2 else 0.0} for i in range(FEW_RECORDS + 5)
    ]
    large = record_keys("v1", Batch(many, NAMES, numeric=True))
    assert len(large) == len(many) > FEW_RECORDS
    assert large == record_keys("v1", many)  # plain records, looked up by name
    assert large == [record_keys("v1", Batch([r], NAMES, numeric=True))[0] for r in many]
    assert len(set(large)) == len(many)
    # Integers, as JSON spells whole numbers: the same keys as their floats, on both paths.
    whole = [{"b": i, "a": -(2**53) + i, "c": 0} for i in range(FEW_RECORDS + 5)]
    as_floats = [{name: float(value) for name, value in r.items()} for r in whole]
    assert record_keys("v1", whole) == record_keys("v1", as_floats)
    assert [record_keys("v1", [r])[0] for r in whole] == record_keys("v1", as_floats)


def test_records_not_in_feature_order_are_looked_up_by_name() -> None:
    shuffled = [{"c": 3.0, "a": 1.0, "b": 2.0}]
    assert matrix(Batch(shuffled, NAMES, numeric=True), NAMES).tolist() == [[2.0, 1.0, 3.0]]
