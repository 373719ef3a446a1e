"""Predictions. Plain ``def``: inference is CPU-bound and runs in the threadpool."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.deps import ModelDep, PredictorDep, RequestIdDep, SettingsDep
from app.schemas import ErrorResponse, PredictRequest, PredictResponse
from app.services.inference import NoFallbackError

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
def predict(
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
        result = predictor.predict(model, records)
    except NoFallbackError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
    return PredictResponse(
        model_version=model.version,
        predictions=result.predictions,
        probabilities=result.probabilities if probabilities else None,
        request_id=request_id,
        fallback=result.fallback_reason is not None,
        fallback_reason=result.fallback_reason,
    )
