"""What the served model is and what it accepts."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ModelDep
from app.schemas import ErrorResponse, ModelSummary

router = APIRouter(prefix="/v1", tags=["models"])


@router.get(
    "/model",
    responses={503: {"model": ErrorResponse, "description": "No verified model loaded."}},
)
def read_model(model: ModelDep) -> ModelSummary:
    """Manifest summary and the JSON Schema of one input record."""
    manifest = model.manifest
    return ModelSummary(
        name=manifest.name,
        version=manifest.version,
        format=manifest.format,
        created_at=manifest.created_at,
        git_rev=manifest.git_rev,
        metrics=manifest.metrics,
        output=manifest.output,
        features=manifest.features,
        input_schema=model.record_model.model_json_schema(by_alias=True),
    )
