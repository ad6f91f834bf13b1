"""The interface every push channel implements (FCM, Web Push, webhook, console).

The notify pipeline hands a channel a batch of `Push`es, each bound for one device, and
gets one `PushResult` per push back, in the same order. A channel never raises for a
single failed push: it reports it, saying whether a retry can help.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol

Priority = Literal["high", "normal"]


@dataclass(frozen=True, slots=True)
class Push:
    """One message to one device."""

    ref: int  # the outbox row this push comes from; echoed back in the result
    token: str  # FCM's registration token, or a Web Push subscription's endpoint
    platform: str  # "android" | "ios" | "web"
    title: str
    body: str
    collapse_key: str  # one per alert group, so a phone shows the latest update only
    data: dict[str, str] = field(default_factory=dict)
    priority: Priority = "normal"
    ttl: timedelta | None = None
    leader: str = ""  # who it is for (channels that address people, not devices, use it)
    p256dh: str = ""  # a Web Push subscription's keys (RFC 8291), base64url
    auth: str = ""


@dataclass(frozen=True, slots=True)
class PushResult:
    ref: int
    ok: bool
    message_name: str | None = None  # FCM's "projects/p/messages/id" on success
    error_code: str | None = None  # e.g. UNREGISTERED, QUOTA_EXCEEDED, UNAVAILABLE
    retryable: bool = False  # a later attempt may succeed
    disable_device: bool = False  # the token is dead: stop sending to it
    retry_after: float | None = None  # seconds, when the service said so
    detail: str = ""  # a human-readable reason; never contains the token


class Channel(Protocol):
    """A way to reach a device."""

    name: str

    def describe(self) -> str:
        """One line for the start-up banner: which channel, and why it was chosen."""
        ...

    async def send(self, pushes: Sequence[Push]) -> list[PushResult]: ...

    async def close(self) -> None: ...


def redact_token(token: str) -> str:
    """A token as it may appear in logs and listings: enough to tell two apart, no more.
    A Web Push endpoint keeps its push service's origin, which says nothing of whose it is."""
    scheme, sep, rest = token.partition("://")
    if sep and scheme in ("https", "http"):
        host = rest.split("/", 1)[0]
        path = rest[len(host) :]
        return f"{scheme}://{host}/…{path[-4:]}" if len(path) > 12 else f"{scheme}://{host}/…"
    if len(token) <= 12:
        return "…"
    return f"{token[:6]}…{token[-4:]}"


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """An HTTP Retry-After header (RFC 9110: seconds, or an HTTP date) in seconds from now."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
