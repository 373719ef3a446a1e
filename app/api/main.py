"""All API routes."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import health, metrics, models, predict

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(predict.router)
api_router.include_router(models.router)
api_router.include_router(metrics.router)

from app.api.routes import batch  # noqa: E402  (own line: appended by the scheduler branch)

api_router.include_router(batch.router)
