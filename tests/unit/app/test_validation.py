"""InputValidator rules on feature kinds the example model does not have (int64, category)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.services.manifest import FeatureSpec
from app.services.validation import InputError, InputValidator, rule_for


def _spec(**fields: Any) -> FeatureSpec:
    """A feature as the newer manifest fields describe it (contract 5)."""
    base: dict[str, Any] = {"dtype": "float64", "min": None, "max": None}
    return cast(FeatureSpec, SimpleNamespace(**{**base, **fields}))


FEATURES = [
    _spec(name="size", dtype="float64", min=10.0, max=20.0),
    _spec(name="rooms", dtype="int64", min=1.0, max=5.0),
    _spec(name="city", dtype="category", allowed=["paris", "lyon"]),
    _spec(name="free", dtype="float64"),
]


@pytest.fixture
def validator() -> InputValidator:
    return InputValidator(FEATURES, range_margin=0.1, max_records=3)


def _errors(call: Any) -> set[tuple[tuple[Any, ...], str]]:
    with pytest.raises(InputError) as caught:
        call()
    return {(tuple(e["loc"]), e["type"]) for e in caught.value.errors}


def test_valid_record(validator: InputValidator) -> None:
    record = {"size": 21.0, "rooms": 5, "city": "lyon", "free": -1e9}
    assert validator.validate_records([record]) == [record]


def test_each_kind_of_bad_value(validator: InputValidator) -> None:
    record = {"size": 21.5, "rooms": 2.0, "city": "nice", "free": True}
    assert _errors(lambda: validator.validate_records([record])) == {
        (("body", "records", 0, "size"), "less_than_equal"),
        (("body", "records", 0, "rooms"), "int_type"),
        (("body", "records", 0, "city"), "literal_error"),
        (("body", "records", 0, "free"), "float_type"),
    }


def test_messages_say_what_to_send(validator: InputValidator) -> None:
    record = {"size": 9.0 - 1e-9, "rooms": "2", "city": 3, "free": 1.0}
    with pytest.raises(InputError) as caught:
        validator.validate_records([record])
    messages = {e["loc"][-1]: e["msg"] for e in caught.value.errors}
    assert messages["size"].startswith("below the accepted range [9, 21] (training range [10, 20]")
    assert messages["rooms"] == "must be a JSON integer (no quotes, no decimal point)"
    assert messages["city"] == "must be one of the accepted values: 'paris', 'lyon'"


def test_integer_out_of_int64_is_refused(validator: InputValidator) -> None:
    wide = InputValidator([_spec(name="n", dtype="int64")], range_margin=0.1, max_records=3)
    assert _errors(lambda: wide.validate_records([{"n": 2**63}])) == {
        (("body", "records", 0, "n"), "less_than_equal")
    }


def test_huge_integer_for_a_float_is_an_error_not_a_crash(validator: InputValidator) -> None:
    free = InputValidator([_spec(name="x")], range_margin=None, max_records=3)
    errors = _errors(lambda: free.validate_records([{"x": 10**400}]))
    assert {loc for loc, _ in errors} == {("body", "records", 0, "x")}


def test_columns_transpose_in_manifest_order(validator: InputValidator) -> None:
    columns: dict[str, list[object]] = {
        "free": [0.0, 1.0],
        "city": ["paris", "lyon"],
        "rooms": [1, 2],
        "size": [10.0, 20.0],
    }
    assert validator.validate_columns(columns) == [
        {"size": 10.0, "rooms": 1, "city": "paris", "free": 0.0},
        {"size": 20.0, "rooms": 2, "city": "lyon", "free": 1.0},
    ]


def test_too_many_records(validator: InputValidator) -> None:
    record = {"size": 15.0, "rooms": 1, "city": "lyon", "free": 0.0}
    assert _errors(lambda: validator.validate_records([record] * 4)) == {
        (("body", "records"), "too_long")
    }


def test_constant_feature_gets_a_margin_of_its_magnitude() -> None:
    rule = rule_for(_spec(name="c", min=50.0, max=50.0), 0.1)
    assert (rule.low, rule.high) == (45.0, 55.0)
    rule = rule_for(_spec(name="z", min=0.0, max=0.0), 0.1)
    assert (rule.low, rule.high) == (-0.1, 0.1)
