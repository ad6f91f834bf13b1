"""The Web Push channel: pushes to browsers and installed web apps (RFC 8030, 8291, 8292).

A leader's phone needs no app store and no Google account on our side: the service worker
of the web app subscribes with the service's VAPID public key, and the subscription (a push
service's endpoint and the browser's keys) is registered as a device of platform "web".
Each push is one POST to the endpoint: the payload encrypted for that browser alone, with
its headers (notify/webpush_message.py), signed with the service's VAPID identity
(notify/webpush_keys.py). The HTTP side is notify/http1.py's keep-alive client, one `Origin`
per push service, at most `connections` pushes in flight to each. `result_for` maps each
answer to what delivery does: 404/410 disable the subscription, 429/5xx are retried
honouring Retry-After, other 4xx are configuration errors, told once in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from dispatcher.notify.base import Push, PushResult, redact_token, retry_after_seconds
from dispatcher.notify.http1 import Origin
from dispatcher.notify.webpush_endpoints import endpoint_origin, endpoint_problem
from dispatcher.notify.webpush_keys import (
    VAPID_KEY_NAME,
    Vapid,
    b64url,
    b64url_decode,
    check_auth,
    check_p256dh,
    new_vapid_pem,
)
from dispatcher.notify.webpush_message import (
    MAX_BODY,
    MAX_PLAIN,
    encrypt,
    headers_for,
    payload,
    topic_of,
)

# What callers took from this module before it was split: the channel's parts, one import.
__all__ = [
    "MAX_BODY",
    "MAX_PLAIN",
    "VAPID_KEY_NAME",
    "Vapid",
    "WebPushChannel",
    "b64url",
    "b64url_decode",
    "check_auth",
    "check_p256dh",
    "encrypt",
    "headers_for",
    "new_vapid_pem",
    "payload",
    "result_for",
    "topic_of",
]

log = logging.getLogger("dispatcher.push.webpush")


# --- answers -------------------------------------------------------------------------------


def _reason(body: bytes) -> str:
    """What a push service said, briefly: Apple's `reason`, Mozilla's `message`, or text."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        for name in ("reason", "message", "error"):
            if isinstance(parsed.get(name), str):
                return str(parsed[name])[:200]
    text = body.decode("utf-8", errors="replace").strip()
    return "".join(c for c in text if c.isprintable())[:200]


def result_for(
    ref: int,
    status: int,
    body: bytes,
    *,
    retry_after: float | None = None,
    location: str | None = None,
) -> PushResult:
    """Map one push service's answer (RFC 8030 and the services' own) to what delivery
    does next."""
    said = _reason(body)
    told = f": {said}" if said else ""
    if status in (200, 201, 202):
        return PushResult(ref, ok=True, message_name=(location or "")[:300] or None)
    if status in (404, 410):
        return PushResult(
            ref,
            False,
            error_code="GONE" if status == 410 else "NOT_FOUND",
            disable_device=True,
            detail=f"the subscription has expired or was removed{told}",
        )
    if status == 413:
        return PushResult(
            ref,
            False,
            error_code="PAYLOAD_TOO_LARGE",
            detail=f"configuration error: the push service refused the payload's size{told}",
        )
    if status in (401, 403):
        return PushResult(
            ref,
            False,
            error_code="VAPID_REFUSED" if status == 403 else "UNAUTHORIZED",
            detail=f"configuration error: the push service "
            f"refused our VAPID credentials (key or subject){told}",
        )
    if status in (408, 429) or status >= 500:
        code = "TOO_MANY_REQUESTS" if status == 429 else f"HTTP_{status}"
        return PushResult(
            ref,
            False,
            error_code=code,
            retryable=True,
            retry_after=retry_after,
            detail=f"HTTP {status} from the push service{told}",
        )
    # 400 (a header or the encoding refused) and any other refusal: the same request would
    # fail again, and it is not the subscription's fault.
    return PushResult(
        ref,
        False,
        error_code=f"HTTP_{status}",
        detail=f"configuration error: HTTP {status} from the push service{told}",
    )


# --- the channel ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ready:
    push: Push
    path: str


class WebPushChannel:
    name = "webpush"

    def __init__(
        self,
        vapid: Vapid,
        *,
        allowed_origins: Sequence[str] = (),
        timeout: float = 10.0,
        connections: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vapid = vapid
        self.allowed = frozenset(allowed_origins)
        self._timeout = timeout
        self._connections = connections
        self._clock = clock
        self._origins: dict[str, Origin] = {}
        self._told: set[tuple[str, str]] = set()  # configuration errors logged, once each

    def describe(self) -> str:
        extra = f" and {', '.join(sorted(self.allowed))}" if self.allowed else ""
        return (
            f"webpush for platform 'web' (VAPID key {self.vapid.public_key[:12]}…, subject "
            f"{self.vapid.subject}; the browsers' push services{extra})"
        )

    def endpoint_problem(self, endpoint: str) -> str | None:
        return endpoint_problem(endpoint, self.allowed)

    async def send(self, pushes: Sequence[Push]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        by_origin: dict[str, list[_Ready]] = defaultdict(list)
        for push in pushes:
            problem = self.endpoint_problem(push.token)
            if problem is not None:
                results[push.ref] = PushResult(
                    push.ref,
                    False,
                    error_code="ENDPOINT_REFUSED",
                    detail=f"configuration error: {problem}",
                )
                continue
            parts = urlsplit(push.token)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            by_origin[endpoint_origin(push.token)].append(_Ready(push, path))
        now = self._clock()
        lanes = []
        for origin, ready in by_origin.items():
            try:
                authorization = self.vapid.header(origin, now)
            except ValueError as exc:
                for r in ready:
                    results[r.push.ref] = PushResult(
                        r.push.ref, False, error_code="VAPID", detail=f"configuration error: {exc}"
                    )
                continue
            work = iter(ready)
            pool = self._origins.get(origin)
            if pool is None:
                pool = self._origins[origin] = Origin(origin, timeout=self._timeout)
            for _ in range(min(self._connections, len(ready))):
                lanes.append(self._lane(pool, origin, authorization, work, results))
        await asyncio.gather(*lanes)
        return [results[p.ref] for p in pushes]

    async def _lane(
        self,
        pool: Origin,
        origin: str,
        authorization: str,
        work: Iterator[_Ready],
        results: dict[int, PushResult],
    ) -> None:
        for ready in work:
            push = ready.push
            # Encrypted here, not all before the first is sent: while this lane encrypts,
            # the others' pushes are on their way (the CPU and the network overlap).
            try:
                body = encrypt(payload(push), push.p256dh, push.auth)
            except Exception as exc:  # keys stored broken: this subscription cannot be used
                results[push.ref] = PushResult(
                    push.ref,
                    False,
                    error_code="BAD_SUBSCRIPTION",
                    disable_device=True,
                    detail=f"cannot encrypt for it: {exc}"[:300],
                )
                continue
            head = pool.head(ready.path, headers_for(push, authorization))
            try:
                answer = await pool.post(head, body)
                result = result_for(
                    push.ref,
                    answer.status,
                    answer.body,
                    retry_after=retry_after_seconds(answer.retry_after),
                    location=answer.location,
                )
            except TimeoutError:
                result = PushResult(
                    push.ref,
                    False,
                    error_code="TIMEOUT",
                    retryable=True,
                    detail=f"no answer from {origin} within {self._timeout:g}s",
                )
            except ConnectionError as exc:
                result = PushResult(
                    push.ref,
                    False,
                    error_code="UNAVAILABLE",
                    retryable=True,
                    detail=f"cannot reach {origin}: {exc}"[:300],
                )
            if push.token in result.detail:
                result = replace(
                    result, detail=result.detail.replace(push.token, redact_token(push.token))
                )
            if result.detail.startswith("configuration error") and result.error_code:
                told = (origin, result.error_code)
                if told not in self._told:
                    self._told.add(told)
                    log.error(
                        "web push to %s: %s (said once per push service)", origin, result.detail
                    )
            results[push.ref] = result

    async def close(self) -> None:
        for pool in self._origins.values():
            pool.close()
        self._origins.clear()
