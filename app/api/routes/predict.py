"""Predictions. ``async``: validation is short; inference runs in the predictor's own bounded
pool, awaited, so no extra thread handoff per request."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from app.api.auth import AUTH_RESPONSES, require_scope
from app.api.deps import ModelDep, PredictorDep, RequestIdDep, ValidatorDep
from app.core import metrics
from app.schemas import ErrorResponse, PredictRequest, PredictResponse, ValidationErrorResponse
from app.services.inference import NoFallbackError, Outcome
from app.services.manifest import ClassificationOutput
from app.services.model_store import LoadedModel
from app.services.validation import InputError, InputValidator

router = APIRouter(prefix="/v1", tags=["predict"])


@router.post(
    "/predict",
    responses={
        **AUTH_RESPONSES,
        400: {
            "model": ErrorResponse,
            "description": "The body cannot be read as JSON text (e.g. it is not UTF-8).",
        },
        413: {
            "model": ErrorResponse,
            "description": "Request body larger than BERTH_MAX_BODY_BYTES: split the batch.",
        },
        422: {
            "model": ValidationErrorResponse,
            "description": "Invalid input: one {loc, msg, type} per bad field, saying what to "
            "send instead (missing or unknown feature, wrong type, NaN/Infinity, out of range, "
            "value not allowed, too many records, both or neither of records/columns).",
        },
        503: {
            "model": ErrorResponse,
            "description": "No verified model loaded, or the model timed out or failed and "
            "there is no cached or default answer to fall back on.",
        },
    },
    dependencies=[Depends(require_scope("predict"))],
)
async def predict(
    body: PredictRequest,
    model: ModelDep,
    validator: ValidatorDep,
    predictor: PredictorDep,
    request_id: RequestIdDep,
    probabilities: Annotated[
        bool, Query(description="Also return class probabilities (classifiers only).")
    ] = False,
) -> PredictResponse:
    """Predict one or more records within the latency budget, falling back if needed.

    Send either `records` (objects keyed by feature name) or `columns` (one list per feature).
    """
    try:
        records = validate(validator, body)
    except InputError as exc:
        raise RequestValidationError(exc.errors) from None
    try:
        result = await predictor.predict_async(model, records)
    except NoFallbackError as exc:
        metrics.FALLBACKS_UNAVAILABLE.labels(exc.reason).inc()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
    count_predictions(model, result)
    return PredictResponse(
        model_version=model.version,
        predictions=result.predictions,
        probabilities=result.probabilities if probabilities or body.probabilities else None,
        request_id=request_id,
        fallback=result.fallback_reason is not None,
        fallback_reason=result.fallback_reason,
    )


def validate(validator: InputValidator, body: PredictRequest) -> list[dict[str, Any]]:
    """The request's rows, checked against the model's features."""
    if (body.records is None) == (body.columns is None):
        raise InputError(
            [
                {
                    "loc": ["body"],
                    "msg": "send exactly one of 'records' (a list of objects keyed by feature "
                    "name) or 'columns' (feature name to a list of values)",
                    "type": "records_or_columns",
                }
            ]
        )
    if body.records is not None:
        return validator.validate_records(body.records)
    assert body.columns is not None
    return validator.validate_columns(body.columns)


def count_predictions(model: LoadedModel, result: Outcome) -> None:
    fallback = result.fallback_reason is not None
    if result.fallback_reason is not None:
        metrics.FALLBACKS.labels(result.fallback_reason).inc()
    is_classifier = isinstance(model.manifest.output, ClassificationOutput)
    labels = Counter(str(p) if is_classifier else "" for p in result.predictions)
    for label, count in labels.items():
        metrics.PREDICTIONS.labels(model.version, label, str(fallback).lower()).inc(count)
