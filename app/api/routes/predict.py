"""Predictions. ``async``: validation is short; inference runs in the predictor's own bounded
pool, awaited, so no extra thread handoff per request.

Two ways to the same answers:

- the fast path (``PredictShortcut``, taken by the request-context middleware in front of
  FastAPI), for the usual request (a key allowed to predict, or an open API; a loaded model; a
  JSON body; no query parameter but a valid ``probabilities``): one pydantic-core call parses
  and checks the raw body (``InputValidator.parse_json``); no FastAPI middleware, routing,
  dependency or request model;
- everything else goes to ``predict`` below, FastAPI's route: body parsing, the dependencies
  (API key, model, validator), the request model and the record checks, in that order, with
  their errors, exactly as declared in the OpenAPI document.

A body the fast path refuses is handed on, so the route decides every error answer. Both paths
answer through ``answer``: the response JSON is written once, not validated again.
"""

from __future__ import annotations

import email.message
from collections import Counter
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json
from starlette.datastructures import QueryParams
from starlette.types import Scope

from app.api.auth import AUTH_RESPONSES, api_key_of, require_scope
from app.api.deps import ModelDep, PredictorDep, RequestIdDep, ValidatorDep, validator_for
from app.core import metrics
from app.core.config import Settings
from app.schemas import ErrorResponse, PredictRequest, PredictResponse, ValidationErrorResponse
from app.services.auth import AuthError, KeyRing
from app.services.inference import NoFallbackError, Outcome, Predictor
from app.services.manifest import ClassificationOutput
from app.services.model_store import LoadedModel, ModelStore
from app.services.validation import InputError, InputValidator, ParsedInput

SCOPE = "predict"
_QUERY_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


router = APIRouter(prefix="/v1", tags=["predict"])


@router.post(
    "/predict",
    response_model=PredictResponse,
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
    dependencies=[Depends(require_scope(SCOPE))],
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
) -> Response:
    """Predict one or more records within the latency budget, falling back if needed.

    Send either `records` (objects keyed by feature name) or `columns` (one list per feature).
    """
    try:
        records = validate(validator, body)
    except InputError as exc:
        raise RequestValidationError(exc.errors) from None
    return await answer(model, predictor, records, probabilities or body.probabilities, request_id)


# The request headers the fast path reads (ASGI servers give header names in lower case).
_FAST_HEADERS = frozenset({b"x-api-key", b"authorization", b"content-type"})


def fast_input(
    scope: Scope, body: bytes, keyring: KeyRing
) -> tuple[LoadedModel, ParsedInput, bool] | None:
    """The model, the checked rows and the probabilities flag of a usual request; None when
    anything is unusual or wrong (the reference path then answers, errors included).

    Reads the raw ASGI scope (one pass over the headers, the first of each name as Starlette's
    ``Headers.get`` does) instead of building a ``Request``."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _FAST_HEADERS:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    state: dict[str, Any] = scope["state"]
    try:
        state["api_key_name"] = keyring.authorize(api_key_of(headers), SCOPE)
    except AuthError:
        return None
    store: ModelStore = state["model_store"]
    model = store.model
    if model is None or not is_json(headers.get("content-type")):
        return None
    query = False
    if scope["query_string"]:
        raw = QueryParams(scope["query_string"]).get("probabilities")
        if raw is not None:
            try:
                query = _QUERY_BOOL.validate_python(raw)
            except ValidationError:
                return None
    settings: Settings = state["settings"]
    parsed = validator_for(model, settings).parse_json(body)
    if parsed is None:
        return None
    return model, parsed, query or parsed.probabilities


@lru_cache(maxsize=64)
def is_json(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of this content type as JSON (``application/json`` or
    ``application/*+json``); without one it does not (strict content type)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def answer(
    model: LoadedModel,
    predictor: Predictor,
    records: list[dict[str, Any]],
    probabilities: bool,
    request_id: str,
) -> Response:
    """Predict ``records`` (checked) and write the response body once."""
    body = await answer_body(model, predictor, records, probabilities, request_id)
    return Response(content=body, media_type="application/json")


async def answer_body(
    model: LoadedModel,
    predictor: Predictor,
    records: list[dict[str, Any]],
    probabilities: bool,
    request_id: str,
) -> bytes:
    """The JSON body of the answer to ``records`` (checked); ``HTTPException`` 503 when the
    model gave no answer and nothing could be fallen back on."""
    try:
        result = await predictor.predict_async(model, records)
    except NoFallbackError as exc:
        metrics.FALLBACKS_UNAVAILABLE.labels(exc.reason).inc()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
    count_predictions(model, result)
    return render(model.version, result, probabilities, request_id)


def render(model_version: str, result: Outcome, probabilities: bool, request_id: str) -> bytes:
    """The ``PredictResponse`` body (same fields, order and JSON as the model would give)."""
    return to_json(
        {
            "model_version": model_version,
            "predictions": result.predictions,
            "probabilities": list(result.probabilities)
            if probabilities and result.probabilities is not None
            else None,
            "request_id": request_id,
            "fallback": result.fallback_reason is not None,
            "fallback_reason": result.fallback_reason,
        },
        inf_nan_mode="null",
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
        metrics.pending.inc(metrics.FALLBACKS.labels(result.fallback_reason))
    predictions = result.predictions
    if not isinstance(model.manifest.output, ClassificationOutput):
        metrics.pending.inc(_predictions_of(model.version, "", fallback), len(predictions))
    elif len(predictions) == 1:  # most requests: no Counter to build
        metrics.pending.inc(_predictions_of(model.version, str(predictions[0]), fallback))
    else:
        for label, count in Counter(map(str, predictions)).items():
            metrics.pending.inc(_predictions_of(model.version, label, fallback), count)


@lru_cache(maxsize=256)  # model versions served by a worker times classes: bounded
def _predictions_of(version: str, label: str, fallback: bool) -> Any:
    return metrics.PREDICTIONS.labels(version, label, str(fallback).lower())
