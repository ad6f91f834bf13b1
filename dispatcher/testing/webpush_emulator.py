"""A Web Push service emulator on loopback (RFC 8030, 8291, 8292), and the browser behind it.

`subscribe()` plays the browser: it makes a P-256 key pair and an auth secret, and gives
the subscription JSON a service worker's `PushSubscription.toJSON()` gives, its endpoint on
this emulator. A POST to the endpoint is checked as the push services check it, strictly:
the VAPID `Authorization` (`vapid t=<JWT>, k=<key>`: ES256 signature verified against `k`,
`aud` this origin, `exp` in the future and at most 24 h ahead, `sub` a mailto: or https:
URL), `k` the applicationServerKey the subscription was made with, `TTL` present,
`Content-Encoding: aes128gcm`, `Urgency` and `Topic` well formed, a body of at most 4096
octets (and, `like_apple`, a `sub` on a real domain, not localhost). Then, as the browser
would, it decrypts the body with the subscription's private key and auth secret, and keeps
the plaintext with the headers. An undelivered push is replaced
by a newer one of the same `Topic` (`pending`, `deliver`). Answers are the services':
201 with a Location; 404 for an unknown subscription and 410 for an expired one; 400, 401,
403, 413 for what they refuse; faults on demand (`fail_next`, a `chaos` spell: testing/
loopback.py): 429/503 with Retry-After, dropped connections, slow answers.

    python -m dispatcher.testing.webpush_emulator --port 9098 --subscriptions 2 [--key K]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import http_ece
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt

from dispatcher.testing.loopback import (
    Attempt,
    Chaos,
    Fault,
    FaultPlan,
    LoopbackServer,
    drop,
    serve_until_interrupted,
)

MAX_BODY = 4096
MAX_EXP = 24 * 3600  # RFC 8292 4.2: an `exp` no more than 24 hours ahead
URGENCIES = ("very-low", "low", "normal", "high")
TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    text = text.strip().rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class ReceivedPush:
    """A push as the browser's service worker would get it, with what came with it."""

    endpoint: str
    payload: dict[str, Any] | None  # the decrypted JSON (None if not a JSON object)
    plaintext: bytes
    size: int  # octets on the wire (encrypted)
    ttl: int
    urgency: str  # "normal" when the header was absent, as RFC 8030 says
    topic: str | None
    vapid_key: str  # `k`, the application server's public key
    claims: dict[str, Any]  # the VAPID JWT's claims
    received_at: datetime


@dataclass(slots=True)
class _Subscription:
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str | None
    gone: bool = False
    queue: list[ReceivedPush] = field(default_factory=list)  # not yet delivered


class WebPushEmulator(LoopbackServer):
    max_body = 64 * 1024

    def __init__(self, *, delay: float = 0.0, like_apple: bool = False) -> None:
        self.delay = delay  # seconds added to every answer, to play a slow network
        # Apple's push service also refuses a `sub` whose host does not resolve, such as
        # mailto:someone@localhost, with 403 {"reason": "BadJwtToken"}; the others take it.
        self.like_apple = like_apple
        self.received: list[ReceivedPush] = []  # every push taken, in order
        self.rejected: list[tuple[int, str]] = []  # (status, why)
        self.attempts: list[Attempt] = []  # every valid push, however answered
        self.answers: list[tuple[datetime, str, int]] = []  # (when, endpoint, status); 0: dropped
        self._subscriptions: dict[str, _Subscription] = {}
        self._faults = FaultPlan()
        self._slow: dict[str, float] = {}
        self._verified: dict[str, dict[str, Any]] = {}  # JWT -> claims (checked once)
        self._changed = asyncio.Condition()
        self.on_push: Any = None  # optional callback(ReceivedPush), for the CLI

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/push/{id}", self._push)

    # --- what tests use ------------------------------------------------------------------

    def subscribe(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A new subscription, as `PushSubscription.toJSON()` gives it to the web app. With
        `application_server_key` (the service's VAPID public key), pushes signed with any
        other key are refused, as browsers' push services do."""
        sid = secrets.token_urlsafe(24)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self._subscriptions[sid] = _Subscription(sid, key, auth, application_server_key)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.origin}/push/{sid}",
            "expirationTime": None,
            "keys": {"p256dh": _b64(public), "auth": _b64(auth)},
        }

    def expire(self, endpoint: str) -> None:
        """The user revoked the permission or the browser dropped it: 410 from now on."""
        self._subscription(endpoint).gone = True

    def fail_next(
        self,
        count: int,
        *,
        status: int = 503,
        retry_after: float | None = None,
        endpoint: str | None = None,
        drop: bool = False,
    ) -> None:
        """The next `count` valid pushes (to `endpoint`, if given) fail: with `status` (and
        Retry-After), or with the connection dropped unanswered if `drop`."""
        self._faults.queue(Fault(count, 0 if drop else status, retry_after, endpoint))

    def chaos(self, chaos: Chaos | None) -> None:
        """From now on fail pushes as `chaos` says; None ends it."""
        self._faults.chaos(chaos)

    def slow_down(self, endpoint: str, seconds: float) -> None:
        self._slow[self._subscription(endpoint).id] = seconds

    def pending(self, endpoint: str) -> list[ReceivedPush]:
        """What the browser would get if it came online now (a newer push of a Topic has
        replaced the older; pushes past their TTL are gone)."""
        sub = self._subscription(endpoint)
        now = datetime.now(UTC)
        sub.queue = [p for p in sub.queue if p.received_at + timedelta(seconds=p.ttl) >= now]
        return list(sub.queue)

    def deliver(self, endpoint: str) -> list[ReceivedPush]:
        """The browser comes online: it gets what is pending, and the queue empties."""
        delivered = self.pending(endpoint)
        self._subscription(endpoint).queue.clear()
        return delivered

    def to(self, endpoint: str) -> list[ReceivedPush]:
        """Every push taken for `endpoint`, in order."""
        return [p for p in self.received if p.endpoint == endpoint]

    async def wait_for(self, count: int, within: float = 10.0) -> list[ReceivedPush]:
        """Wait until at least `count` pushes were taken; fail saying what was."""

        def failure() -> str:
            got = [p.payload for p in self.received]
            return (f"expected {count} web pushes within {within}s, got {len(got)}: {got}; "
                    f"rejected: {self.rejected}")  # fmt: skip

        await self._wait_received(self.received, self._changed, count, within, failure)
        return list(self.received)

    # --- the push service ----------------------------------------------------------------

    def _subscription(self, endpoint: str) -> _Subscription:
        return self._subscriptions[endpoint.rsplit("/", 1)[-1]]

    def _refuse(self, status: int, why: str, endpoint: str = "", **headers: str) -> web.Response:
        self.rejected.append((status, why))
        self.answers.append((datetime.now(UTC), endpoint, status))
        # Mozilla's error shape (autopush), which the channel shows in its detail.
        body = {"code": status, "errno": 0, "error": HTTPStatus(status).phrase, "message": why}
        return web.json_response(body, status=status, headers=headers or None)

    def _vapid(
        self, header: str, sub: _Subscription, endpoint: str
    ) -> tuple[str, dict[str, Any]] | web.Response:
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            return self._refuse(401, "Authorization must use the vapid scheme (RFC 8292)", endpoint)
        parts: dict[str, str] = {}
        for item in params.split(","):
            name, eq, value = item.strip().partition("=")
            if eq:
                parts[name.strip().lower()] = value.strip()
        token, key = parts.get("t"), parts.get("k")
        if not token or not key:
            return self._refuse(401, "vapid Authorization needs t= and k=", endpoint)
        claims = self._verified.get(token + key)
        if claims is None:
            try:
                head = json.loads(_unb64(token.split(".", 1)[0]))
                if head.get("alg") != "ES256":
                    return self._refuse(401, "the JWT must be signed with ES256", endpoint)
                claims = vapid_jwt.decode(token, key)
            except Exception:
                return self._refuse(401, "the JWT's signature does not verify with k", endpoint)
            if not isinstance(claims, dict):
                return self._refuse(401, "the JWT's claims are not an object", endpoint)
            self._verified[token + key] = claims
        if claims.get("aud") != self.origin:
            return self._refuse(
                401, f"aud must be this push service's origin {self.origin}", endpoint
            )
        exp, now = claims.get("exp"), time.time()
        if not isinstance(exp, int) or exp <= now:
            return self._refuse(401, "the JWT has expired (exp)", endpoint)
        if exp > now + MAX_EXP:
            return self._refuse(401, "exp is more than 24 hours ahead", endpoint)
        sub_claim = claims.get("sub")
        if not isinstance(sub_claim, str) or not sub_claim.startswith(("mailto:", "https:")):
            return self._refuse(401, "sub must be a mailto: or https: URL", endpoint)
        host = sub_claim.split("@")[-1] if sub_claim.startswith("mailto:") else sub_claim[8:]
        if self.like_apple and (host.split("/")[0].split(":")[0] == "localhost" or "." not in host):
            self.rejected.append((403, "BadJwtToken"))
            self.answers.append((datetime.now(UTC), endpoint, 403))
            return web.json_response({"reason": "BadJwtToken"}, status=403)
        expected = sub.application_server_key
        if expected is not None and _unb64(expected) != _unb64(key):
            return self._refuse(
                403,
                "the VAPID key does not match the subscription's applicationServerKey",
                endpoint,
            )
        return key, claims

    async def _push(self, request: web.Request) -> web.StreamResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        sid = request.match_info["id"]
        endpoint = f"{self.origin}/push/{sid}"
        sub = self._subscriptions.get(sid)
        if sub is None:
            return self._refuse(404, "no such subscription", endpoint)
        if sub.gone:
            return self._refuse(410, "the subscription has expired", endpoint)
        checked = self._vapid(request.headers.get("Authorization", ""), sub, endpoint)
        if isinstance(checked, web.Response):
            return checked
        key, claims = checked
        ttl_text = request.headers.get("TTL")
        if ttl_text is None or not ttl_text.isdigit():
            return self._refuse(400, "a TTL header (seconds) is required", endpoint)
        if request.headers.get("Content-Encoding", "").lower() != "aes128gcm":
            return self._refuse(400, "Content-Encoding must be aes128gcm (RFC 8291)", endpoint)
        urgency = request.headers.get("Urgency", "normal")
        if urgency not in URGENCIES:
            return self._refuse(400, f"Urgency must be one of {', '.join(URGENCIES)}", endpoint)
        topic = request.headers.get("Topic")
        if topic is not None and not TOPIC.match(topic):
            return self._refuse(
                400, "Topic must be at most 32 URL-safe base64 characters", endpoint
            )
        body = await request.read()
        if len(body) > MAX_BODY:
            return self._refuse(
                413, f"the payload is {len(body)} octets; at most {MAX_BODY}", endpoint
            )
        arrived = time.monotonic()
        if sid in self._slow:
            await asyncio.sleep(self._slow[sid])
        try:
            plain = bytes(
                http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth,
                                 version="aes128gcm")
            )  # fmt: skip
        except Exception as exc:
            return self._refuse(400, f"the browser could not decrypt the payload: {exc}", endpoint)
        try:
            parsed = json.loads(plain)
        except ValueError:
            parsed = None
        payload = parsed if isinstance(parsed, dict) else None
        fault = self._faults.next(endpoint)
        if fault is not None and fault.status == 0:
            self._attempt(endpoint, payload, topic, arrived, 0, None)
            self.rejected.append((0, "connection dropped"))
            self.answers.append((datetime.now(UTC), endpoint, 0))
            drop(request)
        if fault is not None and fault.status != 200:
            self._attempt(endpoint, payload, topic, arrived, fault.status, fault.retry_after)
            retry = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after else {}
            return self._refuse(fault.status, "emulated fault", endpoint, **retry)
        push = ReceivedPush(
            endpoint=endpoint,
            payload=payload,
            plaintext=plain,
            size=len(body),
            ttl=int(ttl_text),
            urgency=urgency,
            topic=topic,
            vapid_key=key,
            claims=claims,
            received_at=datetime.now(UTC),
        )
        if topic is not None:
            sub.queue = [p for p in sub.queue if p.topic != topic]
        sub.queue.append(push)
        self.answers.append((push.received_at, endpoint, 201))
        async with self._changed:
            self.received.append(push)
            self._changed.notify_all()
        if self.on_push is not None:
            self.on_push(push)
        if fault is not None:
            await asyncio.sleep(fault.hold)  # delivered, but the answer comes too late
        self._attempt(endpoint, payload, topic, arrived, 201, None)
        location = f"{self.origin}/m/{secrets.token_urlsafe(12)}"
        return web.Response(status=201, headers={"Location": location, "TTL": ttl_text})

    def _attempt(self, endpoint: str, payload: dict[str, Any] | None, topic: str | None,
                 at: float, status: int, retry_after: float | None) -> None:  # fmt: skip
        group, seq = (payload or {}).get("group_id"), (payload or {}).get("seq")
        self.attempts.append(Attempt(
            token=endpoint, group_id=None if group is None else str(group),
            seq=None if seq is None else str(seq), collapse_key=topic, at=at,
            answered_at=time.monotonic(), status=status, retry_after=retry_after,
            delivered=status == 201,
        ))  # fmt: skip


async def _start(args: argparse.Namespace) -> WebPushEmulator:
    emu = await WebPushEmulator().start(port=args.port)
    print(f"Web Push emulator on {emu.origin}", flush=True)
    for _ in range(args.subscriptions):
        print(f"subscription: {json.dumps(emu.subscribe(args.key))}", flush=True)

    def show(p: ReceivedPush) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} push to …{p.endpoint[-6:]} ({p.urgency}, TTL {p.ttl}, topic "
              f"{p.topic}): {json.dumps(p.payload, ensure_ascii=False)}", flush=True)  # fmt: skip

    if not args.quiet:
        emu.on_push = show
    return emu


def main() -> None:
    p = argparse.ArgumentParser(description="Web Push service emulator on loopback")
    p.add_argument("--port", type=int, default=9098)
    p.add_argument("--subscriptions", type=int, default=1, help="subscriptions to make")
    p.add_argument("--key", default=None, help="the VAPID public key to bind them to")
    p.add_argument("--quiet", action="store_true", help="do not print each push (benches)")
    args = p.parse_args()
    serve_until_interrupted(lambda: _start(args))


if __name__ == "__main__":
    main()
