"""Desk sessions: an operator signs in with an API key and gets a session cookie.

The cookie holds only a random session id (HttpOnly, SameSite=Strict, Secure over HTTPS);
the server keeps, in memory, which key it stands for (by the key's SHA-256), its CSRF token
and when it was last used. Every request looks the key up again, so a key taken out of the
configuration ends its sessions; a session unused for `idle` (12 h) ends too. A write
(any method but GET/HEAD) must carry the session's token in `X-CSRF-Token`, and a request
whose `Origin` or `Sec-Fetch-Site` says it came from another site is refused.
Sessions do not survive a restart: operators sign in again.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from aiohttp import web

from dispatcher.settings import ApiKey
from dispatcher.web.auth import KeyRing
from dispatcher.web.problems import ProblemError

COOKIE = "desk_session"
CSRF_HEADER = "X-CSRF-Token"
IDLE = timedelta(hours=12)
MAX_SESSIONS = 10_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    key_sha256: str
    key_name: str
    started_at: datetime
    seen_at: datetime


SESSION = web.RequestKey("desk_session", Session)


class Sessions:
    """Sessions in memory, the least recently used dropped past `limit`."""

    def __init__(self, *, idle: timedelta = IDLE, limit: int = MAX_SESSIONS) -> None:
        self.idle = idle
        self.limit = limit
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def open(self, key: ApiKey, now: datetime) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            key_sha256=key.sha256,
            key_name=key.name,
            started_at=now,
            seen_at=now,
        )
        self._by_id[session.id] = session
        while len(self._by_id) > self.limit:
            self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str, now: datetime) -> Session | None:
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if now - session.seen_at > self.idle:
            del self._by_id[session_id]
            return None
        session.seen_at = now
        self._by_id.move_to_end(session_id)
        return session

    def close(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request came from another site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser's cross-site write; the CSRF token is still needed
    return urlsplit(origin).netloc == request.host


def cookie_auth(
    keys: KeyRing, sessions: Sessions, clock: Callable[[], datetime]
) -> Callable[[web.Request], Awaitable[ApiKey]]:
    """The desk's check for the auth middleware: a live session of a key still configured,
    and for a write its CSRF token from this site. It raises when there is none: a page
    goes to the sign-in form, a call is answered 401 or 403."""

    async def check(request: web.Request) -> ApiKey:
        page = request.method in SAFE_METHODS and not request.path.startswith("/desk/api/")
        session = sessions.get(request.cookies.get(COOKIE, ""), clock())
        key = await keys.by_hash(session.key_sha256) if session is not None else None
        if session is None or key is None:
            if session is not None:
                sessions.close(session.id)  # its key was revoked
            if page:
                raise web.HTTPSeeOther("/desk/login")
            raise ProblemError(401, "Unauthorized", "sign in at /desk/login")
        if request.method not in SAFE_METHODS:
            token = request.headers.get(CSRF_HEADER, "")
            if not same_origin(request):
                raise ProblemError(403, "Forbidden", "a write from another site is refused")
            if not hmac.compare_digest(token.encode(), session.csrf.encode()):
                raise ProblemError(403, "Forbidden", f"send the session's {CSRF_HEADER} header")
        request[SESSION] = session
        return key

    return check


async def key_for_sign_in(keys: KeyRing, presented: str) -> ApiKey | None:
    """The key an operator typed, if it may use the desk (`read` or `admin`)."""
    key = await keys.lookup(presented.strip()) if presented.strip() else None
    if key is None or not ({"read", "admin"} & set(key.scopes)):
        return None
    return key
