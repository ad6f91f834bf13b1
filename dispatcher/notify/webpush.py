"""The Web Push channel: pushes to browsers and installed web apps (RFC 8030, 8291, 8292).

A leader's phone needs no app store and no Google account on our side: the service worker
of the web app subscribes with the service's VAPID public key, and the subscription (a push
service's endpoint and the browser's keys) is registered as a device of platform "web".
Each push is one POST to the endpoint: the payload JSON encrypted for that browser alone
(aes128gcm, RFC 8291, by `http_ece`: an ECDH with a fresh key, HKDF and AES-GCM per
message), within 4 KB; `TTL` from the route's ttl, `Urgency: high` for immediate routes,
`Topic` (the alert group) so that a newer update replaces an undelivered older one.

The VAPID key pair is made once and kept in the database (`Store.keep_service_key`); a JWT
is signed once per push service and hour (`Vapid`), not per message, with py-vapid. The
HTTP side is notify/http1.py's keep-alive client, one `Origin` per push service, at most
`connections` pushes in flight to each. `result_for` maps each answer to what delivery does:
404/410 disable the subscription, 429/5xx are retried honouring Retry-After, other 4xx are
configuration errors, told once in the log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException

from dispatcher.notify.base import Push, PushResult, redact_token, retry_after_seconds
from dispatcher.notify.http1 import Origin
from dispatcher.notify.webpush_endpoints import endpoint_origin, endpoint_problem

log = logging.getLogger("dispatcher.push.webpush")

VAPID_KEY_NAME = "vapid"
MAX_BODY = 4096  # what every push service must take (RFC 8030 7.2); ours never exceed it
RECORD_SIZE = 4096
# aes128gcm's header (salt 16, record size 4, key id length 1, our public key 65), and per
# record a delimiter octet and the 16-octet AES-GCM tag: a payload of MAX_PLAIN octets
# makes a body of exactly MAX_BODY.
HEADER = 16 + 4 + 1 + 65
MAX_PLAIN = MAX_BODY - HEADER - 1 - 16
DEFAULT_TTL = 3600  # seconds, for a push with no expiry of its own
JWT_LIFETIME = timedelta(hours=12)  # a signed JWT's `exp`; push services refuse over 24 h
RESIGN_AFTER = timedelta(hours=1)  # a new JWT per push service this often
TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding (browsers send it without); ValueError if not."""
    text = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_\-]*={0,2}", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


def check_p256dh(value: str) -> bytes:
    """A subscription's `keys.p256dh`: an uncompressed point on P-256, else ValueError."""
    raw = b64url_decode(value)
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("must be an uncompressed P-256 public key (65 octets, base64url)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError("is not a point on the P-256 curve") from None
    return raw


def check_auth(value: str) -> bytes:
    """A subscription's `keys.auth`: 16 octets, else ValueError."""
    raw = b64url_decode(value)
    if len(raw) != 16:
        raise ValueError("must be the 16-octet authentication secret, base64url")
    return raw


# --- VAPID ---------------------------------------------------------------------------------


def new_vapid_pem() -> str:
    """A new VAPID private key (P-256), PKCS#8 PEM as it is kept in the database."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class Vapid:
    """The service's VAPID identity: its public key for subscribers, and the
    `Authorization` header for each push service, signed once an hour and reused."""

    def __init__(self, private_pem: str, subject: str) -> None:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the stored VAPID key is not a P-256 private key")
        self._signer = Vapid02(private_key=key)
        self.subject = subject
        self.public_key = b64url(
            key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        self._cache: dict[str, tuple[float, str]] = {}  # origin -> (signed at, header)
        self.signed = 0  # JWTs signed so far (once per push service and hour)

    def header(self, origin: str, now: float) -> str:
        """`vapid t=<JWT>, k=<public key>` for pushes to `origin` (RFC 8292), as of `now`
        (UNIX seconds). Raises ValueError for a subject push services would refuse."""
        cached = self._cache.get(origin)
        if cached is not None and now - cached[0] < RESIGN_AFTER.total_seconds():
            return cached[1]
        claims = {
            "aud": origin,
            "exp": int(now + JWT_LIFETIME.total_seconds()),
            "sub": self.subject,
        }
        try:
            signed = self._signer.sign(claims)["Authorization"]
        except VapidException as exc:
            raise ValueError(str(exc)) from exc
        token = signed.split("t=", 1)[1].split(",", 1)[0]
        value = f"vapid t={token}, k={self.public_key}"
        self._cache[origin] = (now, value)
        self.signed += 1
        return value


# --- the message ---------------------------------------------------------------------------


def _fit(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _cut(message: dict[str, Any], name: str, limit: int) -> None:
    """Shorten `message[name]` (with an ellipsis) to the longest prefix that lets the
    message fit in `limit` octets, counted as JSON (escapes make some characters longer)."""
    text = message[name]
    lo, hi = 0, len(text)  # text[:lo] + "…" fits (or lo is 0); text[:hi + 1] does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        message[name] = text[:mid] + "…"
        if len(_fit(message)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    message[name] = text[:lo] + "…" if lo else ""


def payload(push: Push, *, limit: int = MAX_PLAIN) -> bytes:
    """The JSON the service worker receives (after decryption), at most `limit` octets.

    A full push: `{"group_id", "seq", "kind", "title", "body", "url", "data"}`; for a
    `payload: minimal` route only `{"group_id", "seq", "kind", "minimal": true}`, and the
    app fetches the update. Too long for a push, the data goes first, then the body is
    shortened, then the title: the alert always arrives, the app shows the rest."""
    data = dict(push.data)
    group_id = data.pop("group_id", push.collapse_key)
    seq_text = data.pop("seq", "0")
    seq: int | str = int(seq_text) if seq_text.isdigit() else seq_text
    kind = data.pop("kind", "update")
    if data.pop("minimal", None) == "true":
        return _fit({"group_id": group_id, "seq": seq, "kind": kind, "minimal": True})
    message: dict[str, Any] = {
        "group_id": group_id,
        "seq": seq,
        "kind": kind,
        "title": push.title,
        "body": push.body,
        "url": f"/app/#group={group_id}",
        "data": data,
    }
    body = _fit(message)
    if len(body) <= limit:
        return body
    message["data"] = {}
    for name in ("body", "title"):
        if len(_fit(message)) > limit:
            _cut(message, name, limit)
    body = _fit(message)
    if len(body) > limit:  # only a group id of absurd length gets here
        body = _fit({"group_id": group_id, "seq": seq, "kind": kind, "minimal": True})
    return body


def encrypt(plain: bytes, p256dh: str, auth: str) -> bytes:
    """`plain` encrypted for one subscription (RFC 8291, aes128gcm, one record)."""
    return bytes(
        http_ece.encrypt(
            plain,
            salt=os.urandom(16),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            dh=b64url_decode(p256dh),
            auth_secret=b64url_decode(auth),
            version="aes128gcm",
            rs=RECORD_SIZE,
        )
    )


def topic_of(collapse_key: str) -> str:
    """The `Topic` header: up to 32 characters of the URL-safe base64 alphabet. Group ids
    (32 hex) are used as they are; anything else by its digest."""
    if TOPIC.match(collapse_key):
        return collapse_key
    return b64url(hashlib.sha256(collapse_key.encode()).digest()[:24])


def headers_for(push: Push, authorization: str) -> dict[str, str]:
    ttl = DEFAULT_TTL if push.ttl is None else max(0, int(push.ttl.total_seconds()))
    return {
        "Authorization": authorization,
        "TTL": str(ttl),
        "Urgency": "high" if push.priority == "high" else "normal",
        "Topic": topic_of(push.collapse_key),
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
    }


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
