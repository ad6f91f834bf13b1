"""API keys: every endpoint but health needs a key whose scope allows it.

Keys are never stored, only their SHA-256; a request's key is hashed once and looked up:
first among the config's keys (`auth.keys`, for bootstrapping), then among the database's
(`api_keys`, made by `dispatcher keys new`, the admin API or a phone's pairing) through a
small cache. A cached key lives one second, so a key revoked on another instance (or by the
CLI) is refused within a second; a revocation on this instance clears the cache at once.
`admin` holds every scope. Device keys are bound to one leader.

Unknown Bearer keys are limited per client address (`KeyGuessing`): past WRONG_KEYS within
WRONG_KEYS_WINDOW the address is answered 429 with Retry-After, except for keys that have
worked from it lately, which go on working; nothing else is even looked up meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aiohttp import web

from dispatcher.guessing import FailureLimiter, Network, Vouched, client_address
from dispatcher.settings import ApiKey
from dispatcher.store.access import KeyRow
from dispatcher.web.problems import Handler, ProblemError

log = logging.getLogger("dispatcher.auth")

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
        # Digests of database keys seen revoked: a revocation is for good, and there are only
        # as many as rows revoked (nobody can add one by guessing).
        self._revoked: set[str] = set()

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
            if row is not None and row.revoked_at is not None:
                self._revoked.add(digest)
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

    def revoked(self, presented: str) -> bool:
        """Whether `presented` was a key of the service's own, revoked since (known once
        `lookup` found it so): a phone that still holds it is stale, not guessing."""
        return hash_key(presented) in self._revoked

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


# Unknown Bearer keys from one address (an IPv6 client's /64) before it must wait, and how long
# each counts. A centre's reporters behind one NAT share an address, and a phone retrying a
# key the service never knew (or no longer has in `auth.keys`) counts against it: twenty is
# far more than a person mistypes, and keys that worked from the address lately go on
# working during the wait. No overall cap: anyone could then lock every reporter out.
WRONG_KEYS = 20
WRONG_KEYS_WINDOW = timedelta(minutes=10)
REFUSED_REASON = "wrong_keys"  # dispatcher_refused_requests_total{reason=...}


def wrong_key_limiter() -> FailureLimiter:
    return FailureLimiter(per_address=WRONG_KEYS, overall=None, window=WRONG_KEYS_WINDOW)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class KeyGuessing:
    """The limit on guessing Bearer keys: unknown keys per client address (`limiter`), the
    keys that worked from each address lately (`vouched`), whose address a request is from
    (`trusted_proxies`), the clock, and what to call for each refusal (the metric)."""

    trusted_proxies: tuple[Network, ...] = ()
    clock: Callable[[], datetime] = _utc_now
    refused: Callable[[], None] = lambda: None
    limiter: FailureLimiter = field(default_factory=wrong_key_limiter)
    vouched: Vouched = field(default_factory=Vouched)

    def client(self, request: web.Request) -> str:
        return client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), self.trusted_proxies
        )

    def wait(self, client: str, digest: str, now: datetime) -> float | None:
        """Seconds before a key with this SHA-256 is looked up for `client`; None: now."""
        wait = self.limiter.retry_after(client, now)
        if wait is None or self.vouched.has_worked(client, digest, now):
            return None
        return wait

    def unknown(self, client: str, now: datetime) -> None:
        """`client` sent a key the service does not know: one more failure."""
        shut = self.limiter.retry_after(client, now) is not None
        self.limiter.failed(client, now)
        if not shut and self.limiter.retry_after(client, now) is not None:
            log.warning(
                "%d unknown API keys from %s within %s: only keys that worked there pass",
                self.limiter.per_address, client, self.limiter.window,
            )  # fmt: skip

    def worked(self, client: str, digest: str, now: datetime) -> None:
        self.vouched.worked(client, digest, now)


def allows(key: ApiKey, scope: str) -> bool:
    return scope in key.scopes or "admin" in key.scopes


# The desk's session check: the key a request's session cookie stands for (it raises if none).
CookieAuth = Callable[[web.Request], Awaitable[ApiKey]]
COOKIE_PREFIX = "/desk/"  # where sessions are the credential, not Bearer keys


def auth_middleware(
    keys: KeyRing, cookie_auth: CookieAuth | None = None, guessing: KeyGuessing | None = None
) -> Any:
    """Every request's key, checked against its handler's scope. `guessing` (a fresh
    `KeyGuessing` if None) limits unknown Bearer keys per address."""
    guard = guessing if guessing is not None else KeyGuessing()

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
        key = await _admitted(keys, guard, request, presented)
        if not allows(key, scope):
            raise ProblemError(403, "Forbidden", f"the key '{key.name}' lacks the scope '{scope}'")
        keys.used(key)
        request[KEY] = key
        return await handler(request)

    return middleware


async def _admitted(
    keys: KeyRing, guard: KeyGuessing, request: web.Request, presented: str
) -> ApiKey:
    """The key `presented` stands for, or a raised 401 (unknown or revoked) or 429 (its
    address is shut out and this key has not worked from it lately: not looked up, so a
    guesser learns nothing and costs no query). Only an unknown key counts as a failure: a
    revoked one was handed out by the service, and the phone retrying it is stale, not
    guessing."""
    client, now = guard.client(request), guard.clock()
    digest = hash_key(presented)
    wait = guard.wait(client, digest, now)
    if wait is not None:
        guard.refused()
        seconds = math.ceil(wait)
        raise ProblemError(
            429,
            "Too Many Requests",
            f"too many unknown API keys from this address; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    key = keys.find(presented)
    if isinstance(key, _Miss):
        key = await keys.lookup(presented)
    if key is None:
        if not keys.revoked(presented):
            guard.unknown(client, now)
        raise ProblemError(
            401,
            "Unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": 'Bearer realm="dispatcher", error="invalid_token"'},
        )
    guard.worked(client, digest, now)
    return key
