"""The floor of the serving benchmark: a raw ASGI app answering constant JSON, served by the
same nginx and Gunicorn setup as the API. Nothing can be faster through that stack."""

from __future__ import annotations

from typing import Any

BODY = b'{"model_version":"000000000000","predictions":["class_0"],"probabilities":null,"request_id":"x","fallback":false,"fallback_reason":null}'  # noqa: E501
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the request body, as the API must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
