from __future__ import annotations

import asyncio
from typing import Any

from app.core.body import read_body, replay


def _receiver(messages: list[dict[str, Any]]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def test_body_in_several_messages_is_read_whole_and_replayed_once() -> None:
    async def scenario() -> tuple[bytes, list[dict[str, Any]]]:
        receive = _receiver(
            [
                {"type": "http.request", "body": b"ab", "more_body": True},
                {"type": "http.request", "body": b"cd", "more_body": False},
                {"type": "http.disconnect"},
            ]
        )
        body, last = await read_body(receive)
        again = replay(body, last, receive)
        return body, [await again(), await again()]

    body, seen = asyncio.run(scenario())
    assert body == b"abcd"
    assert seen == [
        {"type": "http.request", "body": b"abcd", "more_body": False},
        {"type": "http.disconnect"},  # what the server says next, after the replayed body
    ]


def test_a_client_gone_mid_body_is_replayed_as_the_disconnect() -> None:
    async def scenario() -> tuple[bytes, dict[str, Any], dict[str, Any]]:
        receive = _receiver(
            [
                {"type": "http.request", "body": b"ab", "more_body": True},
                {"type": "http.disconnect"},
            ]
        )
        body, last = await read_body(receive)
        return body, last, await replay(body, last, receive)()

    body, last, first = asyncio.run(scenario())
    assert body == b"ab"
    assert last == {"type": "http.disconnect"}
    assert first == {"type": "http.disconnect"}  # never a partial body passed off as whole
