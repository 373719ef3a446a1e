"""Prometheus metrics. nginx does not expose this route on the public side."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.core.metrics import render

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def read_metrics() -> Response:
    """All workers' metrics in the Prometheus text exposition format."""
    body, content_type = render()
    return Response(content=body, media_type=content_type)
