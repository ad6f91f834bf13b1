"""API keys: every endpoint but health needs a key whose scope allows it.

Keys are never stored, only their SHA-256; a request's key is hashed once and looked up:
first among the config's keys (`auth.keys`, for bootstrapping), then among the database's
(`api_keys`, made by `dispatcher keys new`, the admin API or a phone's pairing) through a
small cache. A cached key lives one second, so a key revoked on another instance (or by the
CLI) is refused within a second; a revocation on this instance clears the cache at once.
`admin` holds every scope. Device keys are bound to one leader.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from aiohttp import web

from dispatcher.settings import ApiKey
from dispatcher.store.access import KeyRow
from dispatcher.web.problems import Handler, ProblemError

SCOPE_ATTR = "__dispatcher_scope__"
KEY = web.RequestKey("api_key", ApiKey)
PUBLIC = "public"
CONFIG_PREFIX = "config:"  # the listing's id for a key in the config file


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


class StoredKey(ApiKey):
    """A key kept in the database rather than the config; `id` is its api_keys row."""

    id: str


def key_id(key: ApiKey) -> str:
    """The id a key is listed under: its row for a database key, `config:<name>` else."""
    return key.id if isinstance(key, StoredKey) else CONFIG_PREFIX + key.name


def stored_id(key: ApiKey) -> str | None:
    """The api_keys row of a database key; None for a config key."""
    return key.id if isinstance(key, StoredKey) else None


def _from_row(row: KeyRow, digest: str) -> StoredKey:
    return StoredKey.model_construct(
        id=row.id,
        name=row.name,
        sha256=digest,
        scopes=list(row.scopes),  # type: ignore[arg-type]  # checked when made
        leader=row.leader_id,
    )


class _Miss:
    pass


MISS: Final = _Miss()
Fetch = Callable[[str], Awaitable[KeyRow | None]]


class KeyRing:
    """The keys the service admits: the config's, and the database's through a cache.

    A presented key costs one SHA-256 and a dict lookup or two; the database is asked only
    when a key is not cached (at most once a second per key in use). Unknown keys are cached
    too, briefly, and lookups of the same key wait for one query, so a flood of bad keys
    costs at most `readers` queries at a time. Uses are noted here and written to the
    database once a minute at most (`take_used`), never on the request's path.
    """

    def __init__(
        self,
        keys: Iterable[ApiKey],
        fetch: Fetch | None = None,
        *,
        ttl: float = 1.0,
        negative_ttl: float = 1.0,
        readers: int = 2,
        max_cached: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._by_hash = {k.sha256: k for k in keys}
        self._fetch = fetch
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_cached = max_cached
        self._clock = clock
        self._cache: dict[str, tuple[float, StoredKey | None]] = {}
        self._inflight: dict[str, asyncio.Future[StoredKey | None]] = {}
        self._readers = readers
        self._gate: asyncio.Semaphore | None = None
        self._used: set[str] = set()  # key_id() of keys used since take_used()

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def config_keys(self) -> list[ApiKey]:
        return list(self._by_hash.values())

    def find(self, presented: str) -> ApiKey | _Miss | None:
        """The key if known without asking the database (config or cache), None if known
        to be unknown, MISS if the database must be asked (`lookup`)."""
        digest = hash_key(presented)
        found = self._by_hash.get(digest)
        if found is not None:
            return found
        if self._fetch is None:
            return None
        entry = self._cache.get(digest)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return MISS

    async def lookup(self, presented: str) -> ApiKey | None:
        found = self.find(presented)
        if not isinstance(found, _Miss):
            return found
        return await self._load(hash_key(presented))

    async def _load(self, digest: str) -> StoredKey | None:
        waiting = self._inflight.get(digest)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[StoredKey | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            if self._gate is None:
                self._gate = asyncio.Semaphore(self._readers)
            async with self._gate:
                assert self._fetch is not None
                row = await self._fetch(digest)
            key = _from_row(row, digest) if row is not None and row.revoked_at is None else None
            now = self._clock()
            if len(self._cache) >= self.max_cached:
                self._prune(now)
            self._cache[digest] = (now + (self.ttl if key else self.negative_ttl), key)
            future.set_result(key)
            return key
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: only the waiters, if any, raise it
            raise
        finally:
            del self._inflight[digest]

    def _prune(self, now: float) -> None:
        for digest in [d for d, (until, _) in self._cache.items() if until <= now]:
            del self._cache[digest]
        if len(self._cache) >= self.max_cached:
            self._cache.clear()

    def forget(self) -> None:
        """Drop every cached key: a key revoked here is refused from the next request."""
        self._cache.clear()

    def used(self, key: ApiKey) -> None:
        self._used.add(key_id(key))

    def take_used(self) -> set[str]:
        """The keys used since the last call (key_id() of each)."""
        used, self._used = self._used, set()
        return used

    async def by_hash(self, digest: str) -> ApiKey | None:
        """The key with this SHA-256 while it is admitted (a desk session's key, which ends
        within a second of the key's revocation, as a Bearer key would be refused)."""
        found = self._by_hash.get(digest)
        if found is not None or self._fetch is None:
            return found
        entry = self._cache.get(digest)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return await self._load(digest)


def allows(key: ApiKey, scope: str) -> bool:
    return scope in key.scopes or "admin" in key.scopes


# The desk's session check: the key a request's session cookie stands for (it raises if none).
CookieAuth = Callable[[web.Request], Awaitable[ApiKey]]
COOKIE_PREFIX = "/desk/"  # where sessions are the credential, not Bearer keys


def auth_middleware(keys: KeyRing, cookie_auth: CookieAuth | None = None) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = request.match_info.handler
        scope = getattr(route_handler, SCOPE_ATTR, None)
        if scope == PUBLIC or request.match_info.http_exception is not None:
            return await handler(request)
        if scope is None:
            # A handler that forgot to declare its scope is closed, not open.
            raise ProblemError(403, "Forbidden", "this endpoint declares no scope")
        if cookie_auth is not None and request.path.startswith(COOKIE_PREFIX):
            # The desk: a session cookie (with its CSRF token on writes), never a Bearer key.
            found = await cookie_auth(request)
            if not allows(found, scope):
                raise ProblemError(
                    403, "Forbidden", f"the key '{found.name}' lacks the scope '{scope}'"
                )
            keys.used(found)
            request[KEY] = found
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise ProblemError(
                401,
                "Unauthorized",
                "send an API key as 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="dispatcher"'},
            )
        key = keys.find(presented)
        if isinstance(key, _Miss):
            key = await keys.lookup(presented)
        if key is None:
            raise ProblemError(
                401,
                "Unauthorized",
                "unknown or revoked API key",
                headers={"WWW-Authenticate": 'Bearer realm="dispatcher", error="invalid_token"'},
            )
        if not allows(key, scope):
            raise ProblemError(403, "Forbidden", f"the key '{key.name}' lacks the scope '{scope}'")
        keys.used(key)
        request[KEY] = key
        return await handler(request)

    return middleware
