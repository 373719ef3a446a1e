"""Request and response bodies. The per-record model is built from the bundle's manifest."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.services.manifest import FeatureSpec, OutputSpec

# JSON numbers only (no strings, no booleans), and no NaN/Infinity.
FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def build_record_model(features: Sequence[FeatureSpec]) -> type[BaseModel]:
    """A model accepting exactly the manifest's features: unknown or missing ones are errors.

    Fields are declared under neutral names with the feature name as alias, so any feature
    name works (even one like ``copy`` or ``a/b``), and error locations show the feature name.
    """
    fields: dict[str, Any] = {
        f"f{index}": (
            Literal[tuple(feature.allowed or ())] if feature.is_categorical else FiniteNumber,
            Field(
                alias=feature.name,
                description=f"one of {feature.allowed}"
                if feature.is_categorical
                else f"{feature.dtype}, seen in training: {feature.min} to {feature.max}",
            ),
        )
        for index, feature in enumerate(features)
    }
    model: type[BaseModel] = create_model(
        "Record",
        __config__=ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False),
        **fields,
    )
    return model


class PredictRequest(BaseModel):
    """Either ``records`` or ``columns``: the same rows, by record or by feature."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"records": [{"feature_a": 1.5, "feature_b": 0.2}]},
                {"columns": {"feature_a": [1.5, 2.0], "feature_b": [0.2, 0.3]}},
            ]
        },
    )

    records: list[dict[str, Any]] | None = Field(
        default=None,
        min_length=1,
        description="Records keyed by feature name; see GET /v1/model for the features.",
    )
    columns: dict[str, list[Any]] | None = Field(
        default=None,
        description="Column-oriented rows for large batches: each feature name to a list of "
        "values, one per row, all lists of the same length. Predictions come in row order.",
    )
    probabilities: bool = Field(
        default=False,
        description="Also return class probabilities (classifiers only); same as the "
        "`probabilities` query parameter.",
    )


class PredictResponse(BaseModel):
    model_version: str
    predictions: list[str] | list[float]
    probabilities: list[dict[str, float]] | None = Field(
        description="Per record, the probability of each class; only with ?probabilities=true."
    )
    request_id: str
    fallback: bool = Field(
        default=False,
        description="True when the answer did not come from the model but from the fallback "
        "cache (the last answer for the same record and model version) or the default answer.",
    )
    fallback_reason: Literal["timeout", "model_error"] | None = Field(
        default=None,
        description="Why the model's answer was not used: it missed the latency budget "
        "('timeout') or raised ('model_error'). Null when fallback is false.",
    )


class ModelSummary(BaseModel):
    name: str
    version: str
    format: str
    created_at: datetime
    git_rev: str
    metrics: dict[str, float]
    output: OutputSpec
    features: list[FeatureSpec]
    input_schema: dict[str, Any] = Field(
        description="JSON Schema of one record, with the accepted ranges (training range "
        "widened by range_margin) and categorical values."
    )
    range_margin: float | None = Field(
        description="Fraction of each numeric feature's training range accepted beyond it on "
        "either side (BERTH_RANGE_MARGIN); null: ranges are not checked."
    )
    auth: Literal["api_key", "open"] = Field(
        description="'api_key': predict and model routes need a key (X-API-Key or Authorization: "
        "Bearer); 'open': no keys are configured and anyone can call them."
    )


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    model_version: str | None = None
    detail: str | None = None


class ErrorResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "no model loaded"}]})

    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: ['body', 'records', 3, 'hue'].")
    msg: str = Field(description="What is wrong and what to send instead.")
    type: str = Field(description="Machine-readable error kind (pydantic's where it applies).")


class ValidationErrorResponse(BaseModel):
    detail: list[FieldError]
