"""API key dependency for the ``/v1`` routes (health, readiness and metrics stay open)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.schemas import ErrorResponse
from app.services.auth import AuthError, KeyRing

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (python -m app.keys new NAME)."
)
bearer = HTTPBearer(auto_error=False, description="The same API key, as a bearer token.")

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
    403: {"model": ErrorResponse, "description": "The API key may not use this route."},
}


def api_key_of(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, read as the two schemes above read it: a non-empty
    ``X-API-Key``, else the token of ``Authorization: Bearer TOKEN``."""
    header_key = headers.get("x-api-key")
    if header_key:
        return header_key
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def get_keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


def require_scope(scope: str) -> Callable[..., Awaitable[str | None]]:
    """A dependency that lets the request on with a key allowed ``scope``, or answers 401/403."""

    async def check(
        request: Request,
        header_key: Annotated[str | None, Depends(api_key_header)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str | None:
        key = header_key or (credentials.credentials if credentials else None)
        try:
            keyring: KeyRing = request.app.state.keyring
            name = keyring.authorize(key, scope)
        except AuthError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            raise HTTPException(exc.status, detail=exc.detail, headers=headers) from None
        request.state.api_key_name = name
        return name

    return check
