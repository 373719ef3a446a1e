"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.services.inference import Predictor
from app.services.model_store import LoadedModel, ModelStore
from app.services.validation import InputValidator


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


async def get_model_store(request: Request) -> ModelStore:
    store: ModelStore = request.state.model_store
    return store


async def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.state.predictor
    return predictor


async def get_request_id(request: Request) -> str:
    request_id: str = request.state.request_id
    return request_id


async def get_model(store: Annotated[ModelStore, Depends(get_model_store)]) -> LoadedModel:
    """The loaded model (retrying a failed load when due, in a thread), or 503 saying why
    there is none. Dependencies are ``async``: a plain ``def`` costs a thread handoff each."""
    model = store.model or await run_in_threadpool(store.retry_if_due)
    if model is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"no model loaded: {store.error}",
        )
    return model


_validators: dict[tuple[str, float | None, int], InputValidator] = {}


def validator_for(model: LoadedModel, settings: Settings) -> InputValidator:
    """The input validator of ``model`` under ``settings``, built once per model version and
    settings (building one compiles its pydantic-core schemas)."""
    key = (model.version, settings.range_margin, settings.max_records)
    validator = _validators.get(key)
    if validator is None:
        validator = InputValidator(
            model.manifest.features, settings.range_margin, settings.max_records
        )
        if len(_validators) >= 8:  # a worker serves one model at a time; tests build a few
            _validators.clear()
        _validators[key] = validator
    return validator


async def get_validator(
    model: Annotated[LoadedModel, Depends(get_model)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> InputValidator:
    """The input validator of the served model."""
    return validator_for(model, settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelStoreDep = Annotated[ModelStore, Depends(get_model_store)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
ValidatorDep = Annotated[InputValidator, Depends(get_validator)]
