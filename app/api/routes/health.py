"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from app.api.deps import ModelStoreDep
from app.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> HealthResponse:
    """The process is alive (says nothing about the model)."""
    return HealthResponse(status="ok")


@router.get(
    "/ready",
    response_model=ReadyResponse,
    response_model_exclude_none=True,
    responses={503: {"model": ReadyResponse, "description": "No verified model loaded."}},
)
def ready(store: ModelStoreDep) -> ReadyResponse | JSONResponse:
    """A model is loaded and passed its golden check: this worker can take traffic.

    Without one, the worker tries loading again when the bundle changed or the retry time passed.
    """
    model = store.retry_if_due()
    if model is None:
        body = ReadyResponse(status="unavailable", detail=store.error)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content=body.model_dump(exclude_none=True),
        )
    return ReadyResponse(status="ready", model_version=model.version)
