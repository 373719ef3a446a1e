"""The fast path of ``POST /v1/predict``: a shortcut the request-context middleware takes in
place of FastAPI (``app.core.middleware.Shortcut``).

Offered the whole body of a usual request (``predict.fast_input`` accepts it, see
``app.api.routes.predict``), it answers it; anything else goes on to FastAPI, body included,
whose route then answers it (errors included). The request id, access log, metrics and body
limit apply as to any request. Saves FastAPI's middleware, routing, exception and exit-stack
layers, the request object and the dependency resolution: a large share of a one-record
request's CPU time.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import Scope

from app.api import errors
from app.api.routes import predict
from app.core.body_limit import content_length
from app.core.middleware import Headers
from app.services.auth import KeyRing

PATH = "/v1/predict"
JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class PredictShortcut:
    def __init__(self, route: BaseRoute, keyring: KeyRing, max_bytes: int) -> None:
        self.route = route  # the route the access log and metrics name the request by
        self.keyring = keyring
        self.max_bytes = max_bytes

    def takes(self, scope: Scope) -> bool:
        """``POST /v1/predict`` with a declared body size within the limit (the server reads no
        further). Other bodies go to the app, whose body limit refuses or counts them."""
        if scope["path"] != PATH or scope["method"] != "POST":
            return False
        size = content_length(scope)
        return size is not None and size <= self.max_bytes

    async def answer(self, scope: Scope, body: bytes) -> tuple[int, Headers, bytes] | None:
        state = scope["state"]
        try:
            fast = predict.fast_input(scope, body, self.keyring)
            if fast is None:
                return None
            scope["route"] = self.route
            model, parsed, probabilities = fast
            content = await predict.answer_body(
                model, state["predictor"], parsed.records, probabilities, state["request_id"]
            )
        except HTTPException as exc:  # as FastAPI's handler of HTTPException answers it
            return _json(exc.status_code, {"detail": exc.detail}, exc.headers)
        except Exception as exc:  # as the app's handler of unexpected errors answers them
            request_id = state["request_id"]
            errors.log_unhandled(exc, request_id)
            return _json(500, errors.internal_error(request_id))
        # What Response(content, media_type="application/json") sends, without building one.
        return 200, [(b"content-length", str(len(content)).encode()), JSON_CONTENT_TYPE], content


def _json(
    status: int, content: object, headers: Mapping[str, str] | None = None
) -> tuple[int, Headers, bytes]:
    """What ``JSONResponse(content, status, headers)`` sends (errors only: not a hot path)."""
    response = JSONResponse(content, status, headers)
    return status, list(response.raw_headers), bytes(response.body)
