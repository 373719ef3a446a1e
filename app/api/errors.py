"""Every error answer is JSON, and none echoes the input back."""

from __future__ import annotations

import logging

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.core import metrics

log = logging.getLogger("berth.errors")


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 with one ``{loc, msg, type}`` per bad field.

    Unlike FastAPI's default this drops ``input``: it would echo feature values, and a NaN in it
    cannot even be encoded as JSON.
    """
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    for error in errors:
        metrics.VALIDATION_FAILURES.labels(failed_field(error["loc"], error["type"])).inc()
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": errors}
    )


def failed_field(loc: list[object], error_type: str) -> str:
    """A bounded metric label for an error location.

    ``body.records.<i>.<feature>`` and ``body.columns.<feature>`` give the feature name (the
    manifest bounds those), unless the feature is unknown (``extra_forbidden``): its name is the
    caller's choice.
    """
    if loc[:2] == ["body", "records"]:
        if len(loc) >= 4 and isinstance(loc[3], str):
            return "_unknown_feature" if error_type == "extra_forbidden" else loc[3]
        return "records"
    if loc[:2] == ["body", "columns"]:
        if len(loc) >= 3 and isinstance(loc[2], str):
            return "_unknown_feature" if error_type == "extra_forbidden" else loc[2]
        return "columns"
    if len(loc) >= 2 and loc[0] == "query" and isinstance(loc[1], str):
        return loc[1]  # query parameters are declared, so bounded
    return "_request"


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log_unhandled(exc, request_id)
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, content=internal_error(request_id)
    )


def log_unhandled(exc: Exception, request_id: str | None) -> None:
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})


def internal_error(request_id: str | None) -> dict[str, str | None]:
    """The body of a 500: nothing about the error itself (the log has it)."""
    return {"detail": "internal error; see the server log", "request_id": request_id}
