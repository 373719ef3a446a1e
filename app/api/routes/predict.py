"""Predictions. ``async``: validation is short; inference runs in the predictor's own bounded
pool, awaited, so no extra thread handoff per request."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.deps import ModelDep, PredictorDep, RequestIdDep, SettingsDep
from app.core import metrics
from app.schemas import ErrorResponse, PredictRequest, PredictResponse
from app.services.inference import NoFallbackError, Outcome
from app.services.manifest import ClassificationOutput
from app.services.model_store import LoadedModel

router = APIRouter(prefix="/v1", tags=["predict"])


@router.post(
    "/predict",
    responses={
        503: {
            "model": ErrorResponse,
            "description": "No verified model loaded, or the model timed out or failed and "
            "there is no cached or default answer to fall back on.",
        }
    },
)
async def predict(
    body: PredictRequest,
    model: ModelDep,
    settings: SettingsDep,
    predictor: PredictorDep,
    request_id: RequestIdDep,
    probabilities: Annotated[
        bool, Query(description="Also return class probabilities (classifiers only).")
    ] = False,
) -> PredictResponse:
    """Predict one or more records within the latency budget, falling back if needed."""
    if len(body.records) > settings.max_records:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "records"),
                    "msg": f"at most {settings.max_records} records per request",
                    "type": "too_long",
                }
            ]
        )
    try:
        records = model.validate_records(body.records)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", "records", *error["loc"])} for error in exc.errors()]
        ) from None
    try:
        result = await predictor.predict_async(model, records)
    except NoFallbackError as exc:
        metrics.FALLBACKS_UNAVAILABLE.labels(exc.reason).inc()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
    count_predictions(model, result)
    return PredictResponse(
        model_version=model.version,
        predictions=result.predictions,
        probabilities=result.probabilities if probabilities else None,
        request_id=request_id,
        fallback=result.fallback_reason is not None,
        fallback_reason=result.fallback_reason,
    )


def count_predictions(model: LoadedModel, result: Outcome) -> None:
    fallback = result.fallback_reason is not None
    if result.fallback_reason is not None:
        metrics.FALLBACKS.labels(result.fallback_reason).inc()
    is_classifier = isinstance(model.manifest.output, ClassificationOutput)
    labels = Counter(str(p) if is_classifier else "" for p in result.predictions)
    for label, count in labels.items():
        metrics.PREDICTIONS.labels(model.version, label, str(fallback).lower()).inc(count)
