"""The FCM channel: pushes over FCM's HTTP v1 API on our own pool of keep-alive connections.

firebase-admin gives us what it does well: the service-account credentials (refreshed in a
worker thread, so the event loop never blocks on google-auth's `requests` calls) and the
message model with its encoding, which validates what it builds. Sending is ours, because
firebase-admin's async path cannot carry a fan-out: through httpx it costs too much CPU a
message (bench/fanout.py; figures in docs/performance.md), it does not retry 429, ignores
Retry-After on 503, and one non-string data value fails the whole batch. Here each message
is one POST to `{endpoint}/v1/projects/{project}/messages:send` (FCM v1 has no batch
endpoint since 2024), `connections` of them in flight at once on keep-alive connections
(notify/http1.py: aiohttp's client cost more CPU than everything else in a fan-out), each
with its own timeout, so one slow device holds up nothing but its own slot.

FCM answers a failure with a google.rpc.Status whose details may carry an FcmError code
(https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode); `result_for` maps each
to what delivery should do: retry (honouring Retry-After), disable the device, or report a
configuration error. Retries themselves are Delivery's (notify/outbox.py), from the outbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import firebase_admin
import google.auth.transport.requests
from firebase_admin import credentials, messaging

from dispatcher.notify.base import Push, PushResult, redact_token, retry_after_seconds
from dispatcher.notify.http1 import Origin

GOOGLE = "https://fcm.googleapis.com"
APNS_COLLAPSE_MAX = 64
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
# google-auth may look up a "regional access boundary" at iamcredentials.googleapis.com after
# its first authorized request; it is opt-in through this variable in current releases.
RAB_LOOKUP_ENV = "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED"
# The google.rpc code FCM gives for an HTTP status, when its answer names none.
RPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
              404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
              504: "DEADLINE_EXCEEDED"}  # fmt: skip
RETRYABLE = {"QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "UNKNOWN",
             "UNSPECIFIED_ERROR", "DEADLINE_EXCEEDED", "ABORTED"}  # fmt: skip
CONFIG_ERRORS = {"SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR",
                 "PERMISSION_DENIED"}  # fmt: skip


def to_message(push: Push) -> messaging.Message:
    high = push.priority == "high"
    headers = {
        "apns-priority": "10" if high else "5",
        "apns-collapse-id": push.collapse_key.encode()[:APNS_COLLAPSE_MAX].decode(errors="ignore"),
    }
    if push.ttl is not None:
        # APNs takes an absolute UNIX time; FCM's android.ttl the duration.
        headers["apns-expiration"] = str(int(time.time() + push.ttl.total_seconds()))
    with warnings.catch_warnings():
        # firebase-admin 7.7 marks `token` deprecated in favour of Firebase installation ids;
        # registration tokens are what phones hand us and what FCM v1 still takes.
        warnings.simplefilter("ignore", DeprecationWarning)
        return messaging.Message(
            token=push.token,
            notification=messaging.Notification(title=push.title, body=push.body),
            data=push.data,
            android=messaging.AndroidConfig(
                priority="high" if high else "normal",
                collapse_key=push.collapse_key,
                ttl=push.ttl,
            ),
            apns=messaging.APNSConfig(headers=headers),
        )


def encode(push: Push) -> bytes:
    """The request body FCM takes for one push, built and checked by firebase-admin.
    Raises ValueError or TypeError for a message FCM would refuse (e.g. non-string data)."""
    message = messaging._MessagingService.encode_message(to_message(push))
    return json.dumps({"message": message}, ensure_ascii=False, separators=(",", ":")).encode()


class Encoder:
    """`encode` for a fan-out: the pushes of one update differ only in their token, so each
    distinct message is built and checked by firebase-admin once, and each push's body is
    that message with its own token put in (a fifth of the sender's time otherwise)."""

    _HOLE = "dispatcher-token-goes-here"

    def __init__(self) -> None:
        self._seen: dict[tuple[object, ...], tuple[bytes, bytes]] = {}

    def __call__(self, push: Push) -> bytes:
        if not isinstance(push.token, str) or not push.token:
            raise ValueError("Message.token must be a non-empty string.")
        key = (push.platform, push.title, push.body, push.collapse_key, push.priority,
               push.ttl, tuple(push.data.items()))  # fmt: skip
        halves = self._seen.get(key)
        if halves is None:
            whole = encode(replace(push, token=self._HOLE))
            before, _, after = whole.partition(json.dumps(self._HOLE).encode())
            halves = self._seen[key] = (before, after)
        return halves[0] + json.dumps(push.token, ensure_ascii=False).encode() + halves[1]


def _error_of(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and d.get("@type") == kind]


def result_for(
    ref: int, status: int, body: bytes, *, retry_after: float | None = None
) -> PushResult:
    """Map one FCM v1 answer (HTTP status and body) to what delivery should do next."""
    if 200 <= status < 300:
        try:
            name = json.loads(body).get("name")
        except (ValueError, AttributeError):
            name = None  # sent all the same: FCM took it
        return PushResult(ref, ok=True, message_name=name if isinstance(name, str) else None)
    error = _error_of(body)
    fcm_code = next((d.get("errorCode") for d in _details(error, FCM_ERROR)), None)
    rpc = error.get("status") if isinstance(error.get("status"), str) else None
    code = str(fcm_code or rpc or RPC_STATUS.get(status, f"HTTP_{status}"))
    text = str(error.get("message") or f"HTTP {status} from FCM")[:250]
    if code == "UNREGISTERED":
        return PushResult(ref, False, error_code=code, disable_device=True,
                          detail="the app was removed from the device")  # fmt: skip
    if code == "INVALID_ARGUMENT":
        fields = {
            v.get("field")
            for d in _details(error, BAD_REQUEST)
            for v in d.get("fieldViolations") or []
            if isinstance(v, dict)
        }
        if "message.token" in fields or "registration token" in text.lower():
            return PushResult(ref, False, error_code=code, disable_device=True,
                              detail="not a valid registration token")  # fmt: skip
        return PushResult(ref, False, error_code=code,
                          detail=f"FCM refused the message (our bug): {text}")  # fmt: skip
    if code in CONFIG_ERRORS:
        return PushResult(ref, False, error_code=code, detail=f"configuration error: {text}")
    if code == "UNAUTHENTICATED":
        return PushResult(ref, False, error_code=code, retryable=True, retry_after=retry_after,
                          detail=f"FCM refused our access token: {text}")  # fmt: skip
    if code in RETRYABLE or status in (408, 429) or status >= 500:
        return PushResult(ref, False, error_code=code, retryable=True, retry_after=retry_after,
                          detail=text)  # fmt: skip
    # Any other refusal (e.g. 404 for a project that does not exist): not the phone's fault,
    # and the same request would fail again.
    return PushResult(ref, False, error_code=code, detail=f"configuration error: {text}")


class FcmChannel:
    name = "fcm"

    def __init__(
        self,
        credential: credentials.Certificate,
        endpoint: str,
        source: str,
        *,
        timeout: float = 10.0,
        connections: int = 64,
    ) -> None:
        self._credential = credential.get_credential()
        self._project = credential.project_id
        self._endpoint = endpoint.rstrip("/")
        # An endpoint may be a relay under a path of its own: keep it.
        prefix = urlsplit(self._endpoint).path.rstrip("/")
        self._path = f"{prefix}/v1/projects/{self._project}/messages:send"
        self._origin = Origin(self._endpoint, timeout=timeout)
        self._source = source
        self._timeout = timeout
        self._connections = connections
        self._refresh_lock = asyncio.Lock()
        self._refused: str | None = None  # an access token FCM answered 401 to
        self._headers = {
            "Content-Type": "application/json; charset=UTF-8",
            # As firebase-admin sends them: the error format its mapping (and ours) expects.
            "X-GOOG-API-FORMAT-VERSION": "2",
            "X-FIREBASE-CLIENT": f"fire-admin-python/{firebase_admin.__version__}",
            "x-goog-api-client": (
                f"gl-python/{platform.python_version()} fire-admin/{firebase_admin.__version__}"
            ),
        }

    @classmethod
    async def create(
        cls,
        credentials_path: str,
        endpoint: str = GOOGLE,
        http_timeout: float = 10.0,
        connections: int = 64,
    ) -> FcmChannel:
        if endpoint.rstrip("/") != GOOGLE:
            # Never reach Google from a non-Google setup (tests, emulators, air-gapped relays).
            os.environ[RAB_LOOKUP_ENV] = "false"
        if not hasattr(messaging._MessagingService, "encode_message"):
            raise RuntimeError(
                "firebase-admin no longer has _MessagingService.encode_message; "
                "dispatcher cannot encode FCM messages with this SDK version"
            )
        cred = await asyncio.to_thread(credentials.Certificate, credentials_path)
        return cls(cred, endpoint, credentials_path, timeout=http_timeout, connections=connections)

    def describe(self) -> str:
        return (
            f"fcm (project {self._project} via {self._endpoint}, credentials {self._source}, "
            f"{self._connections} connections)"
        )

    async def _access_token(self) -> str:
        async with self._refresh_lock:
            cred = self._credential
            # `valid` is False when missing or expiring within minutes.
            if not cred.valid or cred.token == self._refused:
                await asyncio.to_thread(cred.refresh, google.auth.transport.requests.Request())
                self._refused = None
            return str(cred.token)

    async def send(self, pushes: Sequence[Push]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        ready: list[tuple[Push, bytes]] = []
        encode_one = Encoder()
        for push in pushes:
            try:
                ready.append((push, encode_one(push)))
            except (ValueError, TypeError) as exc:
                # One bad message must not hold up the others.
                results[push.ref] = PushResult(push.ref, False, error_code="INVALID_MESSAGE",
                                               detail=f"not sendable: {exc}"[:300])  # fmt: skip
        if ready:
            try:
                token = await self._access_token()
            except Exception as exc:  # the token endpoint is down or refuses us
                detail = f"cannot get an access token: {exc}"[:300]
                for push, _ in ready:
                    results[push.ref] = PushResult(push.ref, False, error_code="AUTH",
                                                   retryable=True, detail=detail)  # fmt: skip
            else:
                head = self._origin.head(
                    self._path, {**self._headers, "Authorization": f"Bearer {token}"}
                )
                work = iter(ready)
                lanes = min(self._connections, len(ready))
                await asyncio.gather(*(self._lane(work, head, results) for _ in range(lanes)))
                if any(r.error_code == "UNAUTHENTICATED" for r in results.values()):
                    self._refused = token  # fetch a new one before the retry
        return [results[p.ref] for p in pushes]

    async def _lane(
        self, work: Iterator[tuple[Push, bytes]], head: bytes, results: dict[int, PushResult]
    ) -> None:
        # A few long-lived workers share one iterator: cheaper than a task per push, and at
        # most `connections` requests are ever in flight.
        for push, body in work:
            try:
                answer = await self._origin.post(head, body)
                retry_after = retry_after_seconds(answer.retry_after)
                result = result_for(push.ref, answer.status, answer.body, retry_after=retry_after)
            except TimeoutError:
                late = f"no answer from FCM within {self._timeout:g}s"
                result = PushResult(push.ref, False, error_code="DEADLINE_EXCEEDED",
                                    retryable=True, detail=late)  # fmt: skip
            except ConnectionError as exc:
                result = PushResult(push.ref, False, error_code="UNAVAILABLE", retryable=True,
                                    detail=f"cannot reach FCM: {exc}"[:300])  # fmt: skip
            if push.token and push.token in result.detail:  # FCM does not echo it; be sure
                result = _redacted(result, push.token)
            results[push.ref] = result

    async def close(self) -> None:
        self._origin.close()


def _redacted(result: PushResult, token: str) -> PushResult:
    return replace(result, detail=result.detail.replace(token, redact_token(token)))
