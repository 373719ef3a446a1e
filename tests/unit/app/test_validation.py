"""InputValidator rules on feature kinds the example model does not have (int64, category)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.routes.predict import validate
from app.schemas import PredictRequest
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


def _two_step(validator: InputValidator, body: bytes) -> tuple[list[dict[str, Any]], bool] | None:
    """What the reference path makes of a body: json.loads, the request model, the checks."""
    try:
        request = PredictRequest.model_validate(json.loads(body), from_attributes=True)
        return validate(validator, request), request.probabilities
    except (ValueError, InputError, RecursionError):  # ValidationError, JSONDecodeError
        return None


GOOD = {"size": 15.0, "rooms": 2, "city": "lyon", "free": -1.5}
FAST = [
    {"records": [GOOD]},
    {"records": [GOOD, {**GOOD, "city": "paris"}], "probabilities": True},
    {"records": [GOOD], "columns": None, "probabilities": False},
    {"columns": {k: [v, v] for k, v in GOOD.items()}},
    {"columns": {k: [v] for k, v in GOOD.items()}, "records": None, "probabilities": True},
    {"records": [{**GOOD, "size": 21.0, "rooms": 5, "free": 1e300}]},
    {"records": [{**GOOD, "size": 15}]},
    {"records": [{**GOOD, "free": -0.0}]},
]
BODIES = [
    *FAST,
    # Refused by both, or by the fast path only (the two-step checks then answer):
    {"records": [GOOD], "probabilities": "true"},
    {"records": [GOOD], "probabilities": 1},
    {"records": [GOOD], "probabilities": None},
    {"records": []},
    {"records": [GOOD] * 4},
    {"records": [GOOD], "columns": {k: [v] for k, v in GOOD.items()}},
    {},
    {"records": None},
    {"columns": {k: [v, v] if k != "city" else [v] for k, v in GOOD.items()}},
    {"columns": {k: [] for k in GOOD}},
    {"columns": {k: [v] * 4 for k, v in GOOD.items()}},
    {"records": [{**GOOD, "rooms": 2.0}]},
    {"records": [{**GOOD, "rooms": 2**63}]},
    {"records": [{**GOOD, "city": "nice"}]},
    {"records": [{**GOOD, "size": 21.1}]},
    {"records": [{**GOOD, "size": True}]},
    {"records": [{**GOOD, "extra": 1.0}]},
    {"records": [{k: v for k, v in GOOD.items() if k != "free"}]},
    {"records": [GOOD], "other": 1},
    {"records": {"0": GOOD}},
    [GOOD],
]
RAW_BODIES = [
    b'{"records": [{"size": NaN, "rooms": 2, "city": "lyon", "free": 0}]}',
    b'{"records": [{"size": 15, "rooms": 2, "city": "lyon", "free": Infinity}]}',
    b'{"records": [{"size": 15, "rooms": 2, "city": "lyon", "free": 1e999}]}',
    b'{"records": [{"size": 15, "rooms": 2, "city": "lyon", "free": 0, "free": 1e999}]}',
    b'{"records": [{"size": 15, "rooms": 2, "city": "lyon", "free": 1e999, "free": 0}]}',
    b'{"records": [{"size": 15, "rooms": 2, "city": "lyon", "free": 0}], "records": []}',
    b'{"records": [{"size": 15, "rooms": 2, "city": "lyon", "free": 0},]}',
    b'{"records": [{"size": 15, "rooms": 2, "city": "\\u006cyon", "free": 0}]}',
    b'{"records": [{"size": 15, "rooms": 2, "city": "\\ud800", "free": 0}]}',
    b'\xef\xbb\xbf{"records": [{"size": 15, "rooms": 2, "city": "lyon", "free": 0}]}',
    b'{"records": [{"size": 15, "rooms": 2, "city": "lyon", "free": 0}]} trailing',
    b'{"records": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b"",
    b"not json",
]


@pytest.mark.parametrize(
    "body", [json.dumps(b).encode() for b in BODIES] + RAW_BODIES, ids=lambda b: str(b)[:60]
)
def test_fast_path_never_accepts_what_the_checks_refuse(
    validator: InputValidator, body: bytes
) -> None:
    """``parse_json`` never accepts what the two-step checks refuse, and gives the same rows
    (in the same key order). It may refuse more: the two-step checks then answer."""
    fast = validator.parse_json(body)
    reference = _two_step(validator, body)
    if fast is not None:
        assert reference is not None
        assert (fast.records, fast.probabilities) == reference
        assert [list(r) for r in fast.records] == [list(r) for r in reference[0]]


@pytest.mark.parametrize("body", FAST, ids=str)
def test_fast_path_takes_the_usual_bodies(validator: InputValidator, body: object) -> None:
    assert validator.parse_json(json.dumps(body).encode()) is not None


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "records": st.one_of(
                st.none(),
                st.lists(
                    st.dictionaries(
                        st.sampled_from([*GOOD, "x"]),
                        st.one_of(
                            st.floats(allow_nan=True, allow_infinity=True),
                            st.integers(min_value=-(2**65), max_value=2**65),
                            st.sampled_from(["lyon", "paris", "nice", True, None]),
                        ),
                    ),
                    max_size=4,
                ),
            ),
            "probabilities": st.one_of(st.booleans(), st.integers(0, 2), st.none()),
        },
    )
)
def test_fast_path_never_accepts_more(body: dict[str, Any]) -> None:
    validator = InputValidator(FEATURES, range_margin=0.1, max_records=3)
    raw = json.dumps(body).encode()  # NaN and Infinity come out as the JS tokens
    fast = validator.parse_json(raw)
    if fast is not None:
        assert (fast.records, fast.probabilities) == _two_step(validator, raw)


def test_columns_give_the_matrix_of_their_records() -> None:
    numeric = InputValidator(
        [_spec(name="size", min=10.0, max=20.0), _spec(name="rooms", dtype="int64")],
        range_margin=None,
        max_records=3,
    )
    batch = numeric.validate_columns({"rooms": [1, 2], "size": [10.5, 20.0]})
    fast = numeric.parse_json(b'{"columns": {"rooms": [1, 2], "size": [10.5, 20.0]}}')
    assert fast is not None
    for rows in (batch, fast.records):
        assert rows == [{"size": 10.5, "rooms": 1}, {"size": 20.0, "rooms": 2}]
        assert rows.columns(["size", "rooms"]).tolist() == [[10.5, 1.0], [20.0, 2.0]]
        assert rows.columns(["size", "rooms"]).flags["C_CONTIGUOUS"]
