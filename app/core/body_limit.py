"""Refuse request bodies over a size limit with 413, before anything parses them.

A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked) is
read until it passes the limit. Accepted bodies are handed on unchanged.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.body import BodyTooLarge, read_body, replay

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            # No route reads the body of other methods, so nothing is buffered or parsed.
            await self.app(scope, receive, send)
            return
        declared = content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        if declared is not None:
            # The server (h11/httptools) stops at Content-Length: count, but no buffering.
            await self.app(scope, receive, send)
            return
        try:
            body, last = await read_body(receive, self.max_bytes)
        except BodyTooLarge:
            await self._refuse(send)
            return
        await self.app(scope, replay(body, last, receive), send)

    async def _refuse(self, send: Send) -> None:
        content = json.dumps(
            {
                "detail": f"request body larger than {self.max_bytes} bytes: send fewer "
                "records per request (split the batch)"
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


def content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
