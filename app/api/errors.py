"""Every error answer is JSON, and none echoes the input back."""

from __future__ import annotations

import logging

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": errors}
    )


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content={"detail": "internal error; see the server log", "request_id": request_id},
    )
