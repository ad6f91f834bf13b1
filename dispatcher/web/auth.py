"""API keys: every endpoint but health needs a key whose scope allows it.

Keys are never stored, only their SHA-256; a request's key is hashed and looked up.
`admin` holds every scope. Device keys are bound to one leader.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from dispatcher.settings import ApiKey
from dispatcher.web.problems import Handler, problem

SCOPE_ATTR = "__dispatcher_scope__"
KEY = web.RequestKey("api_key", ApiKey)
PUBLIC = "public"


def requires(scope: str) -> Callable[[Handler], Handler]:
    """Declare the scope a handler needs (`public` for none)."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, SCOPE_ATTR, scope)
        return handler

    return mark


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "dk_" + secrets.token_urlsafe(32)


class KeyRing:
    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_hash = {k.sha256: k for k in keys}

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, presented: str) -> ApiKey | None:
        return self._by_hash.get(hash_key(presented))


def allows(key: ApiKey, scope: str) -> bool:
    return scope in key.scopes or "admin" in key.scopes


def auth_middleware(keys: KeyRing) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = request.match_info.handler
        scope = getattr(route_handler, SCOPE_ATTR, None)
        if scope == PUBLIC or request.match_info.http_exception is not None:
            return await handler(request)
        if scope is None:
            # A handler that forgot to declare its scope is closed, not open.
            return problem(403, "Forbidden", "this endpoint declares no scope")
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return problem(
                401,
                "Unauthorized",
                "send an API key as 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="dispatcher"'},
            )
        key = keys.lookup(presented.strip())
        if key is None:
            return problem(
                401,
                "Unauthorized",
                "unknown API key",
                headers={"WWW-Authenticate": 'Bearer realm="dispatcher", error="invalid_token"'},
            )
        if not allows(key, scope):
            return problem(403, "Forbidden", f"the key '{key.name}' lacks the scope '{scope}'")
        request[KEY] = key
        return await handler(request)

    return middleware
