"""The FCM channel: pushes through firebase-admin's async API (HTTP v1).

firebase-admin gives us credentials, the message model and encoding, and FCM's error types.
`push.fcm.endpoint` points it at any FCM-compatible base URL; the SDK has no option for
that, so `_point_at` sets its messaging service's send URL, and fails loudly at start if an
SDK upgrade moved it. The SDK refreshes its OAuth token with blocking `requests` calls inside
its async path; we refresh it first in a worker thread, so the event loop never blocks on it.
Each FCM error maps to what delivery should do: retry, disable the device, or report a
configuration error.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
import warnings
from collections.abc import Sequence
from typing import Any

import firebase_admin
import google.auth.transport.requests
from firebase_admin import credentials, exceptions, messaging

from dispatcher.notify.base import Push, PushResult

GOOGLE = "https://fcm.googleapis.com"
BATCH = 500  # FCM's own limit for one send_each call
APNS_COLLAPSE_MAX = 64
# google-auth may look up a "regional access boundary" at iamcredentials.googleapis.com after
# its first authorized request; it is opt-in through this variable in current releases.
RAB_LOOKUP_ENV = "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED"
RETRYABLE = (
    messaging.QuotaExceededError,
    exceptions.UnavailableError,
    exceptions.InternalError,
    exceptions.DeadlineExceededError,
    exceptions.UnknownError,
    exceptions.UnauthenticatedError,
)
CONFIG_ERRORS = (
    messaging.SenderIdMismatchError,
    messaging.ThirdPartyAuthError,
    exceptions.PermissionDeniedError,
)


def _point_at(app: firebase_admin.App, endpoint: str, project_id: str) -> None:
    service = messaging._get_messaging_service(app)
    if not hasattr(service, "_fcm_url"):
        raise RuntimeError(
            "firebase-admin no longer has _MessagingService._fcm_url; "
            "push.fcm.endpoint cannot be applied with this SDK version"
        )
    service._fcm_url = f"{endpoint.rstrip('/')}/v1/projects/{project_id}/messages:send"


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "http_response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


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
        return _message(push, headers, high)


def _message(push: Push, headers: dict[str, str], high: bool) -> messaging.Message:
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


def result_for(ref: int, response: Any) -> PushResult:
    """Map one firebase-admin SendResponse to what delivery should do next."""
    if response.success:
        return PushResult(ref, ok=True, message_name=response.message_id)
    exc = response.exception
    code = getattr(exc, "code", None) or type(exc).__name__
    text = str(exc)
    if isinstance(exc, messaging.UnregisteredError):
        return PushResult(ref, False, error_code="UNREGISTERED", disable_device=True,
                          detail="the app was removed from the device")  # fmt: skip
    if isinstance(exc, exceptions.InvalidArgumentError):
        if "registration token" in text.lower():
            return PushResult(ref, False, error_code="INVALID_ARGUMENT", disable_device=True,
                              detail="not a valid registration token")  # fmt: skip
        return PushResult(ref, False, error_code="INVALID_ARGUMENT",
                          detail=f"FCM refused the message (our bug): {text}"[:300])  # fmt: skip
    if isinstance(exc, CONFIG_ERRORS):
        name = (
            getattr(exc, "code", "")
            if not isinstance(exc, messaging.SenderIdMismatchError)
            else "SENDER_ID_MISMATCH"
        )
        if isinstance(exc, messaging.ThirdPartyAuthError):
            name = "THIRD_PARTY_AUTH_ERROR"
        return PushResult(ref, False, error_code=name or str(code),
                          detail=f"configuration error: {text}"[:300])  # fmt: skip
    if isinstance(exc, RETRYABLE):
        error_code = (
            "QUOTA_EXCEEDED" if isinstance(exc, messaging.QuotaExceededError) else str(code)
        )
        return PushResult(ref, False, error_code=error_code, retryable=True,
                          retry_after=_retry_after(exc), detail=text[:300])  # fmt: skip
    return PushResult(ref, False, error_code=str(code), retryable=True, detail=text[:300])


class FcmChannel:
    name = "fcm"

    def __init__(
        self, app: firebase_admin.App, project_id: str, endpoint: str, source: str
    ) -> None:
        self._app = app
        self._credential = app.credential.get_credential()
        self._refresh_lock = asyncio.Lock()
        self._project = project_id
        self._endpoint = endpoint
        self._source = source

    @classmethod
    async def create(
        cls, credentials_path: str, endpoint: str = GOOGLE, http_timeout: float = 10.0
    ) -> FcmChannel:
        if endpoint.rstrip("/") != GOOGLE:
            # Never reach Google from a non-Google setup (tests, emulators, air-gapped relays).
            os.environ[RAB_LOOKUP_ENV] = "false"

        def init() -> tuple[firebase_admin.App, str]:
            cred = credentials.Certificate(credentials_path)
            app = firebase_admin.initialize_app(
                cred,
                options={"projectId": cred.project_id, "httpTimeout": http_timeout},
                name=f"dispatcher-{uuid.uuid4().hex[:8]}",
            )
            if endpoint.rstrip("/") != GOOGLE:
                _point_at(app, endpoint, cred.project_id)
            return app, cred.project_id

        app, project = await asyncio.to_thread(init)
        return cls(app, project, endpoint.rstrip("/"), credentials_path)

    def describe(self) -> str:
        return f"fcm (project {self._project} via {self._endpoint}, credentials {self._source})"

    async def _fresh_token(self) -> None:
        async with self._refresh_lock:
            if not self._credential.valid:  # missing, or expiring within minutes
                request = google.auth.transport.requests.Request()
                await asyncio.to_thread(self._credential.refresh, request)

    async def send(self, pushes: Sequence[Push]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        good: list[tuple[int, messaging.Message]] = []
        for push in pushes:
            try:
                message = to_message(push)
                messaging._MessagingService.encode_message(message)
            except (ValueError, TypeError) as exc:
                # One bad message must not fail the batch it would have been sent in.
                results[push.ref] = PushResult(push.ref, False, error_code="INVALID_MESSAGE",
                                               detail=f"not sendable: {exc}"[:300])  # fmt: skip
                continue
            good.append((push.ref, message))
        if good:
            try:
                await self._fresh_token()
            except Exception as exc:  # the token endpoint is down or refuses us
                for ref, _ in good:
                    detail = f"cannot get an access token: {exc}"[:300]
                    results[ref] = PushResult(
                        ref, False, error_code="AUTH", retryable=True, detail=detail
                    )
                good = []
        for start in range(0, len(good), BATCH):
            chunk = good[start : start + BATCH]
            try:
                batch = await messaging.send_each_async([m for _, m in chunk], app=self._app)
            except exceptions.FirebaseError as exc:
                for ref, _ in chunk:
                    results[ref] = PushResult(ref, False, error_code=str(exc.code), retryable=True,
                                              detail=str(exc)[:300])  # fmt: skip
                continue
            for (ref, _), response in zip(chunk, batch.responses, strict=True):
                results[ref] = result_for(ref, response)
        return [results[p.ref] for p in pushes]

    async def close(self) -> None:
        await asyncio.to_thread(firebase_admin.delete_app, self._app)
