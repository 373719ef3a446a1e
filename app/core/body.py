"""Reading a whole request body in ASGI middleware, and handing it on to the app unchanged."""

from __future__ import annotations

from starlette.types import Message, Receive


class BodyTooLarge(Exception):
    """The body passed ``max_bytes`` while it was read (the rest is left unread)."""


async def read_body(receive: Receive, max_bytes: int | None = None) -> tuple[bytes, Message]:
    """The body, and the last message received: the final ``http.request``, or the
    ``http.disconnect`` that cut the body short. ``BodyTooLarge`` once it passes ``max_bytes``;
    without it unbounded: the caller checked a declared ``Content-Length``, at which the server
    stops."""
    chunks: list[bytes] = []
    size = 0
    message: Message = {"type": "http.request", "more_body": True}
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: whoever reads next sees the disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks), message


def replay(body: bytes, last: Message, receive: Receive) -> Receive:
    """``receive`` for the app after ``read_body``: the body in one message (or the disconnect
    that ended it), then whatever ``receive`` gives next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if last["type"] != "http.request":
                return last
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
