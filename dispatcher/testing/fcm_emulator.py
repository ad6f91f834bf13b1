"""An FCM HTTP v1 emulator on loopback: Google's OAuth token endpoint and messages:send.

Strict by design: it verifies the service account's signed JWT as Google does, accepts only
registration tokens it issued, validates every message as the real API does
(`fcm_validate`), and answers failures with the real error shapes (google.rpc.Status with
an FcmError detail), which the sender maps as it would Google's. Tests, benchmarks and the
README tour point the service at it; nothing here leaves the machine.

    python -m dispatcher.testing.fcm_emulator --port 9099 --credentials data/fcm.json --tokens 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

from dispatcher.notify.base import redact_token
from dispatcher.testing.fcm_validate import Invalid, Violation, validate_send
from dispatcher.testing.loopback import (
    Attempt,
    Chaos,
    Fault,
    FaultPlan,
    LoopbackServer,
    drop,
    serve_until_interrupted,
)

__all__ = ["Attempt", "Chaos", "FcmEmulator", "ReceivedMessage"]

MESSAGING_SCOPES = (
    "https://www.googleapis.com/auth/firebase.messaging",
    "https://www.googleapis.com/auth/cloud-platform",
)
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
STATUS_FOR = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    token: str
    title: str
    body: str
    data: dict[str, str]
    android: dict[str, Any]
    apns: dict[str, Any]
    raw: dict[str, Any]
    name: str
    received_at: datetime


def _error(status: int, message: str, *, code: str | None = None, violations: Any = None,
           headers: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    details: list[dict[str, Any]] = []
    if code is not None:
        details.append({"@type": FCM_ERROR, "errorCode": code})
    if violations:
        details.append(
            {
                "@type": BAD_REQUEST,
                "fieldViolations": [
                    {"field": v.field, "description": v.description} for v in violations
                ],
            }
        )
    body = {
        "error": {"code": status, "message": message, "status": STATUS_FOR.get(status, "UNKNOWN")}
    }
    if details:
        body["error"]["details"] = details
    return web.json_response(body, status=status, headers=headers)


@dataclass
class FcmEmulator(LoopbackServer):
    project_id: str = "dispatcher-emulator"
    delay: float = 0.0  # seconds added to every send, to play a slow network
    received: list[ReceivedMessage] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (status, error code)
    attempts: list[Attempt] = field(default_factory=list)  # every valid send, however answered
    tokens_issued: int = 0
    access_tokens_granted: int = 0

    def __post_init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self._public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.key_id = secrets.token_hex(20)
        self.client_email = f"firebase-adminsdk@{self.project_id}.iam.gserviceaccount.com"
        self._valid_tokens: set[str] = set()
        self._unregistered: set[str] = set()
        self._access_tokens: set[str] = set()
        self._faults = FaultPlan()
        self._slow: dict[str, float] = {}
        self._changed = asyncio.Condition()
        self.on_message: Any = None  # optional callback(ReceivedMessage), for the CLI

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)

    @property
    def base_url(self) -> str:
        return self.origin

    # --- what tests use ------------------------------------------------------------------

    def service_account(self, *, private_key_pem: str | None = None) -> dict[str, str]:
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": private_key_pem or self._private_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000000",
            "auth_uri": f"{self.base_url}/auth",
            "token_uri": f"{self.base_url}/token",
            "auth_provider_x509_cert_url": f"{self.base_url}/certs",
            "client_x509_cert_url": f"{self.base_url}/certs/{self.client_email}",
            "universe_domain": "googleapis.com",
        }

    def write_service_account(
        self, path: str | Path, *, private_key_pem: str | None = None
    ) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.service_account(private_key_pem=private_key_pem), indent=2))
        return path

    def issue_token(self, platform: str = "android") -> str:
        """A registration token as a phone would get from FCM, valid here."""
        head = secrets.token_urlsafe(16)[:22]
        tail = "APA91b" + secrets.token_urlsafe(101)[:134]
        token = f"{head}:{tail}"
        self._valid_tokens.add(token)
        self.tokens_issued += 1
        return token

    def unregister(self, token: str) -> None:
        """The app was uninstalled: FCM answers UNREGISTERED from now on."""
        self._unregistered.add(token)

    def slow_down(self, token: str, seconds: float) -> None:
        """Answer sends to `token` only after `seconds`: a device behind a slow path."""
        self._slow[token] = seconds

    def revoke_access_tokens(self) -> None:
        """Every access token granted so far is refused from now on (401 UNAUTHENTICATED)."""
        self._access_tokens.clear()

    def fail_next(
        self,
        count: int,
        *,
        status: int = 503,
        error_code: str = "UNAVAILABLE",
        retry_after: float | None = None,
        token: str | None = None,
    ) -> None:
        """Make the next `count` sends (to `token`, if given) fail like FCM under load."""
        self._faults.queue(Fault(count, status, retry_after, token, error_code))

    def chaos(self, chaos: Chaos | None) -> None:
        """From now on fail sends as `chaos` says; None ends it."""
        self._faults.chaos(chaos)

    async def wait_for(self, count: int, within: float = 10.0) -> list[ReceivedMessage]:
        """Wait until at least `count` messages have arrived; fail saying what did."""

        def failure() -> str:
            got = [(redact_token(m.token), m.title) for m in self.received]
            return (f"expected {count} FCM messages within {within}s, got {len(got)}: {got}; "
                    f"rejected: {self.rejected}")  # fmt: skip

        await self._wait_received(self.received, self._changed, count, within, failure)
        return list(self.received)

    # --- handlers ------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"},
                status=400,
            )
        assertion = str(form.get("assertion", ""))
        try:
            header = jwt.decode_header(assertion)  # type: ignore[no-untyped-call]
            if header.get("kid") != self.key_id:
                raise ValueError("unknown key id")
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                assertion,
                certs={self.key_id: self._public_pem},
                # google-auth signs for Google's token endpoint whatever token_uri says,
                # and that is the audience Google checks.
                audience=[GOOGLE_TOKEN_AUDIENCE, f"{self.base_url}/token"],
                clock_skew_in_seconds=10,
            )
        except (ValueError, auth_exceptions.GoogleAuthError) as exc:
            return web.json_response(
                {"error": "invalid_grant", "error_description": f"Invalid JWT Signature. ({exc})"},
                status=400,
            )
        problems = []
        if claims.get("iss") != self.client_email:
            problems.append("iss is not the service account")
        if int(claims.get("exp", 0)) - int(claims.get("iat", 0)) > 3600:
            problems.append("token lifetime over one hour")
        scopes = str(claims.get("scope", "")).split()
        if not any(s in MESSAGING_SCOPES for s in scopes):
            problems.append("no firebase.messaging or cloud-platform scope")
        if problems:
            return web.json_response(
                {"error": "invalid_scope" if "scope" in problems[-1] else "invalid_grant",
                 "error_description": "; ".join(problems)},
                status=400,
            )  # fmt: skip
        access = "ya29.emu-" + secrets.token_urlsafe(32)
        self._access_tokens.add(access)
        self.access_tokens_granted += 1
        return web.json_response(
            {"access_token": access, "expires_in": 3599, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self._access_tokens:
            return self._reject(_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            ), "UNAUTHENTICATED")  # fmt: skip
        if request.match_info["project"] != self.project_id:
            return self._reject(
                _error(403, "SenderId mismatch", code="SENDER_ID_MISMATCH"), "SENDER_ID_MISMATCH"
            )
        try:
            body = await request.json()
        except ValueError:
            return self._reject(_error(400, "Invalid JSON payload received."), "INVALID_ARGUMENT")
        try:
            msg = validate_send(body)
        except Invalid as exc:
            return self._reject(
                _error(400, exc.message, code="INVALID_ARGUMENT", violations=exc.violations),
                "INVALID_ARGUMENT",
            )
        token = msg.get("token")
        arrived = time.monotonic()
        if token in self._slow:
            await asyncio.sleep(self._slow[token])
        fault = self._faults.next(token or "", chaos=token in self._valid_tokens)
        if fault is not None and fault.status == 0:
            self._attempt(msg, arrived, 0, None, delivered=False)
            self.rejected.append((0, "CONNECTION_DROPPED"))
            drop(request)
        if fault is not None and fault.status != 200:
            code = fault.code or ("QUOTA_EXCEEDED" if fault.status == 429 else "UNAVAILABLE")
            headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after else None
            self._attempt(msg, arrived, fault.status, fault.retry_after, delivered=False)
            return self._reject(
                _error(fault.status, f"emulated {code}", code=code, headers=headers), code
            )
        if token is not None:
            if token in self._unregistered:
                return self._reject(
                    _error(404, "Requested entity was not found.", code="UNREGISTERED"),
                    "UNREGISTERED",
                )
            if token not in self._valid_tokens:
                return self._reject(
                    _error(
                        400,
                        "The registration token is not a valid FCM registration token",
                        code="INVALID_ARGUMENT",
                        violations=[Violation("message.token", "Invalid registration token")],
                    ),
                    "INVALID_ARGUMENT",
                )
        name = f"projects/{self.project_id}/messages/{secrets.token_hex(8)}"
        if not body.get("validate_only"):
            note = msg.get("notification") or {}
            received = ReceivedMessage(
                token=token or "",
                title=note.get("title", ""),
                body=note.get("body", ""),
                data=dict(msg.get("data") or {}),
                android=dict(msg.get("android") or {}),
                apns=dict(msg.get("apns") or {}),
                raw=msg,
                name=name,
                received_at=datetime.now(UTC),
            )
            async with self._changed:
                self.received.append(received)
                self._changed.notify_all()
            if self.on_message is not None:
                self.on_message(received)
        if fault is not None:
            await asyncio.sleep(fault.hold)  # delivered, but the answer comes too late
        self._attempt(msg, arrived, 200, None, delivered=not body.get("validate_only"))
        return web.json_response({"name": name})

    def _attempt(
        self, msg: dict[str, Any], at: float, status: int, retry_after: float | None,
        *, delivered: bool,
    ) -> None:  # fmt: skip
        data = msg.get("data") or {}
        android = msg.get("android") or {}
        self.attempts.append(
            Attempt(
                token=str(msg.get("token") or ""),
                group_id=data.get("group_id"),
                seq=data.get("seq"),
                collapse_key=android.get("collapse_key"),
                at=at,
                answered_at=time.monotonic(),
                status=status,
                retry_after=retry_after,
                delivered=delivered,
            )
        )

    def _reject(self, response: web.Response, code: str) -> web.Response:
        self.rejected.append((response.status, code))
        return response


async def _start(args: argparse.Namespace) -> FcmEmulator:
    emu = await FcmEmulator().start(port=args.port)
    path = emu.write_service_account(args.credentials)
    print(f"FCM emulator on {emu.base_url} (project {emu.project_id})", flush=True)
    print(f"service account written to {path}", flush=True)
    for _ in range(args.tokens):
        print(f"token: {emu.issue_token()}", flush=True)

    def show(m: ReceivedMessage) -> None:
        stamp = time.strftime("%H:%M:%S")
        body = m.body.replace("\n", " / ")
        print(f"{stamp} push to {redact_token(m.token)}: {m.title} | {body} | {m.data}", flush=True)

    if not args.quiet:
        emu.on_message = show
    return emu


def main() -> None:
    p = argparse.ArgumentParser(description="FCM HTTP v1 emulator on loopback")
    p.add_argument("--port", type=int, default=9099)
    p.add_argument("--credentials", type=Path, default=Path("data/fcm-emulator.json"))
    p.add_argument("--tokens", type=int, default=1, help="registration tokens to issue")
    p.add_argument("--quiet", action="store_true", help="do not print each push (benches)")
    args = p.parse_args()
    serve_until_interrupted(lambda: _start(args))


if __name__ == "__main__":
    main()
