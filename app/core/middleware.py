"""Request id, access log and request metrics, as plain ASGI middleware (no per-request task
overhead)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import metrics
from app.core.body import read_body, replay
from app.core.logging import EXTRAS_ATTR

REQUEST_ID_HEADER = "x-request-id"
# Route label of requests no route matched: their paths are the caller's choice, so unbounded.
UNMATCHED_ROUTE = "_unmatched"
_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.encode()
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

access_log = logging.getLogger("berth.access")

# Per request: a dict that code handling the request (even in a worker thread, which runs in a
# copy of this context) fills with what the access log line should carry, e.g. model_version.
_request_context: ContextVar[dict[str, Any] | None] = ContextVar("berth_request", default=None)


def request_context() -> dict[str, Any]:
    """The current request's log context (a throwaway dict outside a request)."""
    return _request_context.get() or {}


def request_id_from(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` if it is short and plain, else a new random id."""
    for name, value in scope.get("headers", []):
        if name == _REQUEST_ID_HEADER_BYTES:
            candidate: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


Headers = list[tuple[bytes, bytes]]


class Shortcut(Protocol):
    """Answers some requests whole, in place of the app: called with the request's body, it
    gives the status, headers and body of the answer, or None to leave the request to the app.
    Never raises for a request it takes (it answers errors itself)."""

    def takes(self, scope: Scope) -> bool:
        """Whether to read the body and offer the request (its size must be bounded)."""

    async def answer(self, scope: Scope, body: bytes) -> tuple[int, Headers, bytes] | None: ...


class RequestContextMiddleware:
    """Put ``request_id`` in ``request.state``, echo it as a header, log one line and count
    each request. A ``shortcut`` answers the requests it takes in place of the app, under the
    same request id, log line and metrics."""

    def __init__(self, app: ASGIApp, shortcut: Shortcut | None = None) -> None:
        self.app = app
        self.shortcut = shortcut

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        context: dict[str, Any] = {"request_id": request_id}
        token = _request_context.set(context)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = with_request_id(message.get("headers", ()), request_id)
            await send(message)

        pending.request_started()
        try:
            shortcut = self.shortcut
            if shortcut is not None and shortcut.takes(scope):
                body, last = await read_body(receive)
                complete = last["type"] == "http.request"  # else the client went away
                answer = await shortcut.answer(scope, body) if complete else None
                if answer is not None:
                    status, headers, content = answer
                    headers.append((_REQUEST_ID_HEADER_BYTES, request_id.encode("latin-1")))
                    start = {"type": "http.response.start", "status": status, "headers": headers}
                    await send(start)
                    await send({"type": "http.response.body", "body": content})
                    return
                receive = replay(body, last, receive)
            await self.app(scope, receive, send_with_id)
        finally:
            _request_context.reset(token)
            pending.request_ended()
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            method = scope["method"]
            count, duration = _series(route or UNMATCHED_ROUTE, method, status)
            pending.inc(count)
            pending.observe(duration, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                log_request(
                    {
                        **context,
                        "method": method,
                        "route": route or scope["path"],
                        "status": status,
                        "latency_ms": round(elapsed * 1000, 3),
                    }
                )


pending = metrics.pending


def with_request_id(
    headers: Iterable[tuple[bytes, bytes]], request_id: str
) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``x-request-id: request_id`` set as ``MutableHeaders`` sets a header:
    the first one of that name replaced (later ones dropped), else one appended."""
    value = request_id.encode("latin-1")
    result = []
    found = False
    for name, old in headers:
        if name == _REQUEST_ID_HEADER_BYTES:
            if not found:
                result.append((name, value))
                found = True
            continue
        result.append((name, old))
    if not found:
        result.append((_REQUEST_ID_HEADER_BYTES, value))
    return result


@lru_cache(maxsize=1024)  # routes are templates and methods and statuses few: bounded
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The request counter and duration histogram of one route, method and status (a label
    lookup takes a lock and builds tuples; the children themselves never change)."""
    return (
        metrics.HTTP_REQUESTS.labels(route, method, str(status)),
        metrics.HTTP_REQUEST_DURATION.labels(route, method),
    )


def log_request(fields: dict[str, Any]) -> None:
    """The access log line, handed to the handlers directly: ``Logger.info`` would also walk
    the stack for the caller's file and line, which no formatter writes. The record is a copy
    of one made by ``makeRecord`` in this thread and process, with this line's time and fields:
    building a ``LogRecord`` anew costs a ``getpid`` system call and a dozen lookups per line.
    """
    key = (threading.get_ident(), _pid[0])
    template = _templates.get(key)
    if template is None:
        made = access_log.makeRecord(access_log.name, logging.INFO, "", 0, "request", (), None)
        template = _templates[key] = vars(made).copy()
    record = logging.LogRecord.__new__(logging.LogRecord)
    attributes = record.__dict__
    attributes.update(template)
    now = time.time()
    attributes["created"] = now
    attributes["msecs"] = int((now - int(now)) * 1000) + 0.0  # as LogRecord computes it
    attributes["relativeCreated"] = (now - _START) * 1000
    attributes.update(fields)
    attributes[EXTRAS_ATTR] = fields
    access_log.handle(record)


_START: float = logging._startTime  # type: ignore[attr-defined]
_templates: dict[tuple[int, int], dict[str, Any]] = {}
_pid = [os.getpid()]


def _forked() -> None:
    _pid[0] = os.getpid()
    _templates.clear()


os.register_at_fork(after_in_child=_forked)
