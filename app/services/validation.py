"""Input validation built from the bundle's manifest.

One ``InputValidator`` per model version checks a predict request's records, in either form:
``records`` (a list of objects keyed by feature name) or ``columns`` (one list of values per
feature, for large batches). Every problem is one error ``{loc, msg, type}`` saying what is wrong
and what to send instead; no error echoes the value that was sent.

Checks, per feature of the manifest:

- presence: every feature is required, unknown features are refused;
- type: ``float64`` takes any JSON number (not strings or booleans), ``int64`` JSON integers,
  ``category`` one of the manifest's ``allowed`` strings;
- finite: NaN and Infinity are refused;
- range: numeric values must lie within the training range ``[min, max]`` widened on each side by
  ``range_margin`` times its width (a constant feature: times ``max(1, |value|)``). With
  ``range_margin`` None the range is not checked. Features without ``min``/``max`` are not checked.

The rules run inside pydantic-core (a ``TypedDict`` per record), so a 100-record batch costs tens
of microseconds, not a Python loop per value.

``parse_json`` is the fast path of a predict request: it parses the raw JSON body and checks the
whole request (its shape and every value) in one pydantic-core call compiled for the manifest.
It only answers for a valid body; for anything else it returns None and the caller runs the
two-step checks (the request model, then ``validate_records``/``validate_columns``), whose errors
and messages are the API's. So both paths accept exactly the same bodies, and the messages of a
refused body come from one place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict

from app.services.manifest import FeatureSpec
from app.services.records import Batch

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
CATALOG_HINT = "GET /v1/model lists the features and their accepted values"


class InputError(Exception):
    """The request's input is invalid: ``errors`` holds one ``{loc, msg, type}`` per problem,
    located from the request body (``("body", "records", 3, "hue")``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


@dataclass(frozen=True)
class FeatureRule:
    """What one feature accepts, after the range margin is applied."""

    name: str
    kind: Literal["float64", "int64", "category"]
    low: float | None = None
    high: float | None = None
    allowed: tuple[str, ...] | None = None
    trained_min: float | None = None
    trained_max: float | None = None

    def annotation(self) -> Any:
        """The pydantic type of one value of this feature."""
        if self.kind == "category":
            return Literal[self.allowed]
        bounds: dict[str, float] = {}
        if self.low is not None:
            bounds["ge"] = self.low
        if self.high is not None:
            bounds["le"] = self.high
        if self.kind == "int64":
            return Annotated[
                int,
                Field(
                    strict=True,
                    ge=max(INT64_MIN, math.ceil(bounds.get("ge", INT64_MIN))),
                    le=min(INT64_MAX, math.floor(bounds.get("le", INT64_MAX))),
                ),
            ]
        return Annotated[float, Field(strict=True, allow_inf_nan=False, **bounds)]  # type: ignore[call-overload]


def rule_for(feature: FeatureSpec, range_margin: float | None) -> FeatureRule:
    """The rule of one manifest feature.

    Reads the optional manifest fields through plain attributes, so older manifests (numeric
    features only, always with min/max) and newer ones (dtype ``category``, ``allowed``) work.
    """
    dtype: str | None = feature.dtype
    allowed: list[str] | None = getattr(feature, "allowed", None)
    trained_min: float | None = feature.min
    trained_max: float | None = feature.max
    if dtype == "category" or allowed is not None:
        return FeatureRule(feature.name, "category", allowed=tuple(allowed or ()))
    kind: Literal["float64", "int64"] = "int64" if dtype == "int64" else "float64"
    low, high = trained_min, trained_max
    if range_margin is None:
        low = high = None
    elif low is not None and high is not None:
        width = high - low
        pad = range_margin * (width if width > 0 else max(1.0, abs(low)))
        low, high = low - pad, high + pad
    return FeatureRule(feature.name, kind, low, high, None, trained_min, trained_max)


def _closed(name: str, fields: dict[str, Any], total: bool = True) -> Any:
    typed = TypedDict(name, fields, total=total)  # type: ignore[misc]
    typed.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return typed


@dataclass(frozen=True)
class ParsedInput:
    """A predict body that passed every check: its rows, keyed by feature name, and whether it
    asked for probabilities."""

    records: Batch
    probabilities: bool


class InputValidator:
    """Validates predict inputs against one model's features (build once per model version)."""

    def __init__(
        self, features: Sequence[FeatureSpec], range_margin: float | None, max_records: int
    ) -> None:
        self.rules = {feature.name: rule_for(feature, range_margin) for feature in features}
        self.names = [feature.name for feature in features]
        self.numeric = all(rule.kind != "category" for rule in self.rules.values())
        self.max_records = max_records
        self.range_margin = range_margin
        record = _closed("Record", {n: r.annotation() for n, r in self.rules.items()})
        columns = _closed("Columns", {n: list[r.annotation()] for n, r in self.rules.items()})  # type: ignore[misc]
        self.record_adapter: TypeAdapter[Any] = TypeAdapter(record)
        self._records: TypeAdapter[list[dict[str, Any]]] = TypeAdapter(list[record])  # type: ignore[valid-type]
        self._columns: TypeAdapter[dict[str, list[Any]]] = TypeAdapter(columns)
        # The whole predict body, for ``parse_json``: what the request model and the checks
        # above accept together, with the row limit, and ``probabilities`` only as a JSON
        # boolean (other spellings the request model takes go the two-step way).
        rows = Field(min_length=1, max_length=max_records)
        column = Field(max_length=max_records)
        body = _closed(
            "PredictBody",
            {
                "records": Annotated[list[record], rows] | None,  # type: ignore[valid-type]
                "columns": _closed(
                    "BodyColumns",
                    {n: Annotated[list[r.annotation()], column] for n, r in self.rules.items()},  # type: ignore[misc]
                )
                | None,
                "probabilities": Annotated[bool, Field(strict=True)],
            },
            total=False,
        )
        self._body: TypeAdapter[dict[str, Any]] = TypeAdapter(body)

    def record_schema(self) -> dict[str, Any]:
        """JSON Schema of one record, with the accepted ranges (margin included)."""
        return self.record_adapter.json_schema()

    def parse_json(self, body: bytes) -> ParsedInput | None:
        """The rows of a valid JSON predict body, parsed and checked in one pass; None when the
        body is not valid (the caller then reports why with the two-step checks)."""
        try:
            parsed = self._body.validate_json(body)
        except ValueError:  # pydantic's ValidationError, or a body too deeply nested
            return None
        records, columns = parsed.get("records"), parsed.get("columns")
        if records is not None and columns is None:
            return ParsedInput(self._batch(records), parsed.get("probabilities", False))
        if columns is not None and records is None:
            lengths = {len(values) for values in columns.values()}
            if len(lengths) == 1 and lengths != {0}:
                return ParsedInput(self._rows(columns), parsed.get("probabilities", False))
        return None

    def _batch(self, records: list[dict[str, Any]]) -> Batch:
        return Batch(records, self.names, self.numeric)

    def _rows(self, columns: dict[str, list[Any]]) -> Batch:
        ordered = [columns[name] for name in self.names]
        rows = zip(*ordered, strict=True)
        records = [dict(zip(self.names, row, strict=True)) for row in rows]
        if not self.numeric:
            return self._batch(records)
        # The matrix straight from the columns (one row per record, C order).
        matrix = np.ascontiguousarray(np.array(ordered, np.float64).T)
        return Batch(records, self.names, True, matrix)

    def validate_records(self, records: Sequence[object]) -> Batch:
        self._check_count(len(records), ("body", "records"))
        try:
            return self._batch(self._records.validate_python(records))
        except ValidationError as exc:
            raise InputError(self._explain(exc.errors(), ("body", "records"))) from None

    def validate_columns(self, columns: dict[str, list[object]]) -> Batch:
        lengths = {name: len(values) for name, values in columns.items()}
        longest = max(lengths.values(), default=0)
        self._check_count(longest, ("body", "columns"))
        if longest == 0:
            raise InputError(
                [
                    {
                        "loc": ["body", "columns"],
                        "msg": "no rows: give every feature a list of at least one value",
                        "type": "too_short",
                    }
                ]
            )
        try:
            valid = self._columns.validate_python(columns)
        except ValidationError as exc:
            raise InputError(self._explain(exc.errors(), ("body", "columns"))) from None
        uneven = sorted(name for name, length in lengths.items() if length != longest)
        if uneven:
            raise InputError(
                [
                    {
                        "loc": ["body", "columns", name],
                        "msg": f"has {lengths[name]} values where other features have "
                        f"{longest}: every column needs one value per row",
                        "type": "column_length",
                    }
                    for name in uneven
                ]
            )
        return self._rows(valid)

    def _check_count(self, count: int, loc: tuple[str, ...]) -> None:
        if count > self.max_records:
            raise InputError(
                [
                    {
                        "loc": list(loc),
                        "msg": f"at most {self.max_records} records per request; split the "
                        "batch into several requests",
                        "type": "too_long",
                    }
                ]
            )

    def _explain(
        self, errors: Sequence[ErrorDetails], prefix: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        explained = []
        for error in errors:
            loc = [*prefix, *error["loc"]]
            feature = _feature_of(prefix, error["loc"])
            explained.append(
                {"loc": loc, "msg": self._message(error, feature), "type": error["type"]}
            )
        return explained

    def _message(self, error: ErrorDetails, feature: str | None) -> str:
        kind = error["type"]
        rule = self.rules.get(feature) if feature is not None else None
        ctx = error.get("ctx") or {}
        if kind == "missing":
            return "required feature missing: send every feature; " + CATALOG_HINT
        if kind == "extra_forbidden":
            return "unknown feature: remove it; " + CATALOG_HINT
        if rule is None:
            return str(error["msg"])
        if kind == "finite_number":
            return "must be a finite number: NaN and Infinity are not accepted"
        if kind in ("greater_than_equal", "less_than_equal") and rule.trained_min is not None:
            side, limit = (
                ("below", ctx.get("ge"))
                if kind == "greater_than_equal"
                else (
                    "above",
                    ctx.get("le"),
                )
            )
            return (
                f"{side} the accepted range [{rule.low:.6g}, {rule.high:.6g}] (training range "
                f"[{rule.trained_min:.6g}, {rule.trained_max:.6g}] widened by "
                f"{self.range_margin:g} of its width; limit {limit}): check the value and its "
                "units; values this far out were never seen in training"
            )
        if rule.kind == "category":
            shown = ", ".join(repr(value) for value in (rule.allowed or ())[:20])
            return f"must be one of the accepted values: {shown}"
        if rule.kind == "int64":
            return "must be a JSON integer (no quotes, no decimal point)"
        return "must be a JSON number (no quotes, not a boolean or null)"


def _feature_of(prefix: tuple[str, ...], loc: tuple[int | str, ...]) -> str | None:
    """The feature an error is about: ``(index, name)`` for records, ``(name, index)`` for
    columns."""
    if prefix[-1] == "records" and len(loc) >= 2 and isinstance(loc[1], str):
        return loc[1]
    if prefix[-1] == "columns" and len(loc) >= 1 and isinstance(loc[0], str):
        return loc[0]
    return None
