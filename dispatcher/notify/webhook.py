"""The webhook channel: alerts as signed JSON POSTs, for SMS gateways and chat bridges.

The fallback when FCM cannot reach a leader (no phone registered, or FCM failed for good):
Google's terms forbid relying on FCM alone for life-critical alerts. Each push is one POST:

    POST <url>
    Content-Type: application/json
    X-Dispatcher-Timestamp: 1764650000
    X-Dispatcher-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>
    Idempotency-Key: <the outbox row's id>

    {"leader": ..., "title": ..., "body": ..., "priority": ..., "data": {...}}

A receiver checks the signature and the timestamp (to refuse replays) and may see one push
twice after a retry: the idempotency key tells. 2xx is delivered; 408, 429 and 5xx and
network errors are retried with backoff, honouring Retry-After; other 4xx are refused for
good (a configuration error: wrong URL or secret).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Sequence

import aiohttp

from dispatcher.notify.base import Push, PushResult, retry_after_seconds

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
CONCURRENCY = 16


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and the tests): constant-time comparison."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel:
    def __init__(self, name: str, url: str, secret: str, *, timeout: float = 10.0) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(CONCURRENCY)

    def describe(self) -> str:
        host = self._url.split("/")[2] if "//" in self._url else self._url
        return f"webhook '{self.name}' to {host} (HMAC-SHA256 signed)"

    async def send(self, pushes: Sequence[Push]) -> list[PushResult]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        # One slow receiver answer never holds up the others beyond CONCURRENCY at a time.
        return list(await asyncio.gather(*(self._one(p) for p in pushes)))

    async def _one(self, push: Push) -> PushResult:
        assert self._session is not None
        body = json.dumps(
            {
                "leader": push.leader,
                "title": push.title,
                "body": push.body,
                "priority": push.priority,
                "data": push.data,
            },
            ensure_ascii=False,
        ).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Dispatcher-Timestamp": stamp,
            "X-Dispatcher-Signature": sign(self._secret, stamp, body),
            "Idempotency-Key": str(push.ref),
        }
        async with self._limit:
            try:
                async with self._session.post(self._url, data=body, headers=headers) as resp:
                    status = resp.status
                    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                    request_id = resp.headers.get("X-Request-Id")
            except (aiohttp.ClientError, TimeoutError) as exc:
                return PushResult(push.ref, False, error_code="NETWORK", retryable=True,
                                  detail=f"webhook unreachable: {type(exc).__name__}")  # fmt: skip
        if 200 <= status < 300:
            return PushResult(push.ref, True, message_name=f"{self.name}/{request_id or status}")
        code = f"HTTP_{status}"
        if status in RETRYABLE_STATUS:
            busy = "the webhook is busy or down"
            return PushResult(push.ref, False, error_code=code, retryable=True,
                              retry_after=retry_after, detail=busy)  # fmt: skip
        refused = "the webhook refused the alert: check its URL and secret"
        return PushResult(push.ref, False, error_code=code, detail=refused)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
