"""All API routes, as the routers the app includes one by one (not nested in one router:
FastAPI matches every level of nesting again on each request)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import batch, health, metrics, models, predict

routers: list[APIRouter] = [
    health.router,
    predict.router,
    models.router,
    metrics.router,
    batch.router,
]
