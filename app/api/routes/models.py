"""What the served model is and what it accepts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.auth import AUTH_RESPONSES, get_keyring, require_scope
from app.api.deps import ModelDep, ValidatorDep
from app.schemas import ErrorResponse, ModelSummary
from app.services.auth import KeyRing

router = APIRouter(prefix="/v1", tags=["models"])


@router.get(
    "/model",
    responses={
        **AUTH_RESPONSES,
        503: {"model": ErrorResponse, "description": "No verified model loaded."},
    },
    dependencies=[Depends(require_scope("model"))],
)
def read_model(
    model: ModelDep, validator: ValidatorDep, keyring: Annotated[KeyRing, Depends(get_keyring)]
) -> ModelSummary:
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
        input_schema=validator.record_schema(),
        range_margin=validator.range_margin,
        auth="open" if keyring.is_open else "api_key",
    )
