"""The desk's state on the app (`DESK`): its sessions, the wrong sign-in keys per address,
the live feed's hub, the region outlines cached per rules version, and the time zone its
"today" starts in. All of it in memory, per instance: a restart forgets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, timedelta, tzinfo

from aiohttp import web

from dispatcher.feed import FeedHub
from dispatcher.guessing import FailureLimiter
from dispatcher.web.auth import KeyRing
from dispatcher.web.desk.sessions import Sessions

HEARTBEAT = 15.0  # seconds between comments on an idle feed (proxies close silent streams)
# Failed sign-ins from one address (an IPv6 client's /64) before it must wait, and how long
# each failure counts. No overall cap: anyone could then lock every operator out of the
# desk in a crisis, and keys made by the service (256 random bits) cannot be guessed anyway.
SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW = timedelta(minutes=10)


def sign_in_limiter() -> FailureLimiter:
    return FailureLimiter(per_address=SIGN_IN_FAILURES, overall=None, window=SIGN_IN_WINDOW)


@dataclass
class Desk:
    """The desk's state on the app: sessions, failed sign-ins, the feed, cached outlines,
    and the time zone its "today" starts in (`alerts.timezone`)."""

    keys: KeyRing
    sessions: Sessions
    hub: FeedHub
    tz: tzinfo = UTC
    heartbeat: float = HEARTBEAT
    sign_ins: FailureLimiter = field(default_factory=sign_in_limiter)
    outlines: dict[str, bytes] = field(default_factory=dict)  # rules version -> GeoJSON


DESK = web.AppKey("desk", Desk)
