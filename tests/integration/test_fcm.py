"""Our FCM sender (firebase-admin's credentials and encoding) against the FCM emulator: what
arrives, and each failure's fate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import google.auth.transport.requests
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import service_account

from dispatcher.notify.base import Push
from dispatcher.notify.fcm import FcmChannel
from dispatcher.testing.fcm_emulator import FcmEmulator


def push(ref: int, token: str, **more: object) -> Push:
    fields: dict[str, object] = {
        "ref": ref,
        "token": token,
        "platform": "android",
        "title": "Harim · new reports: 1",
        "body": "killed: 2 · injured: 5 · trapped: 0",
        "collapse_key": "group-1",
        "data": {"group_id": "group-1", "seq": "1"},
    }
    fields.update(more)
    return Push(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def channel(fcm_emulator: FcmEmulator, fcm_credentials: Path) -> AsyncIterator[FcmChannel]:
    ch = await FcmChannel.create(str(fcm_credentials), endpoint=fcm_emulator.base_url)
    yield ch
    await ch.close()


async def test_a_push_arrives_as_sent(channel: FcmChannel, fcm_emulator: FcmEmulator) -> None:
    token = fcm_emulator.issue_token()
    (result,) = await channel.send([push(7, token, priority="high", ttl=timedelta(minutes=10))])
    assert result.ok
    assert result.ref == 7
    (got,) = fcm_emulator.received
    assert result.message_name == got.name
    assert got.token == token
    assert got.title == "Harim · new reports: 1"
    assert got.data == {"group_id": "group-1", "seq": "1"}
    assert got.android == {"collapse_key": "group-1", "priority": "high", "ttl": "600s"}
    headers = dict(got.apns["headers"])
    expires = int(headers.pop("apns-expiration"))
    assert headers == {"apns-priority": "10", "apns-collapse-id": "group-1"}
    assert abs(expires - (time.time() + 600)) < 30, "APNs gets the same ttl, as a UNIX time"
    assert fcm_emulator.access_tokens_granted == 1


async def test_routine_pushes_are_normal_priority(
    channel: FcmChannel, fcm_emulator: FcmEmulator
) -> None:
    await channel.send([push(1, fcm_emulator.issue_token())])
    (got,) = fcm_emulator.received
    assert got.android["priority"] == "normal"
    assert got.apns["headers"]["apns-priority"] == "5"


async def test_dead_and_foreign_tokens_disable_the_device(
    channel: FcmChannel, fcm_emulator: FcmEmulator
) -> None:
    gone = fcm_emulator.issue_token()
    fcm_emulator.unregister(gone)
    never = "fake" + fcm_emulator.issue_token()[4:]
    live = fcm_emulator.issue_token()
    results = await channel.send([push(1, gone), push(2, never), push(3, live)])
    assert [(r.ok, r.error_code, r.disable_device) for r in results] == [
        (False, "UNREGISTERED", True),
        (False, "INVALID_ARGUMENT", True),
        (True, None, False),
    ], "one bad device does not hold up the others"
    assert all(gone not in r.detail and never not in r.detail for r in results)


async def test_overload_is_retryable_and_retry_after_is_kept(
    channel: FcmChannel, fcm_emulator: FcmEmulator
) -> None:
    token = fcm_emulator.issue_token()
    fcm_emulator.fail_next(1, status=429, error_code="QUOTA_EXCEEDED", retry_after=30)
    (result,) = await channel.send([push(1, token)])
    assert (result.ok, result.error_code, result.retryable) == (False, "QUOTA_EXCEEDED", True)
    assert result.retry_after == 30.0
    assert not result.disable_device


async def test_a_message_fcm_would_refuse_fails_alone(
    channel: FcmChannel, fcm_emulator: FcmEmulator
) -> None:
    token = fcm_emulator.issue_token()
    results = await channel.send(
        [push(1, token, data={"seq": 1}), push(2, token, collapse_key="g" * 100)]
    )
    assert results[0].error_code == "INVALID_MESSAGE", "non-string data never leaves"
    assert results[1].ok, "the other message in the batch is sent"
    assert fcm_emulator.received[0].apns["headers"]["apns-collapse-id"] == "g" * 64


async def test_a_service_account_signed_with_another_key_gets_no_token(
    fcm_emulator: FcmEmulator, tmp_path: Path
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    forged = fcm_emulator.write_service_account(tmp_path / "forged.json", private_key_pem=pem)
    ch = await FcmChannel.create(str(forged), endpoint=fcm_emulator.base_url)
    try:
        (result,) = await ch.send([push(1, fcm_emulator.issue_token())])
    finally:
        await ch.close()
    assert not result.ok
    assert result.retryable
    assert "invalid_grant" in result.detail
    assert fcm_emulator.received == []
    assert fcm_emulator.access_tokens_granted == 0


async def access_token(emu: FcmEmulator) -> str:
    """An OAuth token from the emulator, obtained the way google-auth obtains one."""
    creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        emu.service_account(), scopes=["https://www.googleapis.com/auth/firebase.messaging"]
    )
    await asyncio.to_thread(creds.refresh, google.auth.transport.requests.Request())
    return str(creds.token)


async def send_raw(
    emu: FcmEmulator, message: dict[str, Any], *, token: str | None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{emu.base_url}/v1/projects/{emu.project_id}/messages:send"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"message": message}, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_the_emulator_answers_like_fcm(fcm_emulator: FcmEmulator) -> None:
    token = fcm_emulator.issue_token()
    auth = await access_token(fcm_emulator)
    status, body = await send_raw(fcm_emulator, {"token": token, "data": {"n": 1}}, token=auth)
    assert status == 400
    error = body["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    violation = error["details"][1]["fieldViolations"][0]
    assert violation["field"] == "message.data[0].value"

    status, body = await send_raw(fcm_emulator, {"token": token, "colour": "red"}, token=auth)
    assert status == 400
    assert 'Unknown name "colour"' in str(body)

    big = {"token": token, "data": {"x": "y" * 4100}}
    status, body = await send_raw(fcm_emulator, big, token=auth)
    assert status == 400
    assert body["error"]["message"] == "Message is too big"

    status, body = await send_raw(fcm_emulator, {"token": token}, token=None)
    assert (status, body["error"]["status"]) == (401, "UNAUTHENTICATED")


async def test_a_slow_device_holds_up_only_itself(
    fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    ch = await FcmChannel.create(str(fcm_credentials), endpoint=fcm_emulator.base_url,
                                 http_timeout=0.3, connections=2)  # fmt: skip
    try:
        slow, *quick = (fcm_emulator.issue_token() for _ in range(6))
        fcm_emulator.slow_down(slow, 2)
        began = time.perf_counter()
        results = await ch.send([push(i, t) for i, t in enumerate([slow, *quick])])
        took = time.perf_counter() - began
    finally:
        await ch.close()
    assert (results[0].error_code, results[0].retryable) == ("DEADLINE_EXCEEDED", True)
    assert all(r.ok for r in results[1:]), "the others went out on the other connection"
    assert took < 1.5, f"the send waited {took:.1f}s for one device"


async def test_a_refused_access_token_is_replaced_before_the_retry(
    channel: FcmChannel, fcm_emulator: FcmEmulator
) -> None:
    token = fcm_emulator.issue_token()
    assert (await channel.send([push(1, token)]))[0].ok
    fcm_emulator.revoke_access_tokens()
    (refused,) = await channel.send([push(2, token)])
    assert (refused.ok, refused.error_code, refused.retryable) == (False, "UNAUTHENTICATED", True)
    (retried,) = await channel.send([push(2, token)])
    assert retried.ok
    assert fcm_emulator.access_tokens_granted == 2


async def test_unavailable_is_retried_after_what_fcm_asked(
    channel: FcmChannel, fcm_emulator: FcmEmulator
) -> None:
    token = fcm_emulator.issue_token()
    fcm_emulator.fail_next(1, status=503, error_code="UNAVAILABLE", retry_after=12)
    fcm_emulator.fail_next(1, status=500, error_code="INTERNAL")
    first, second = await channel.send([push(1, token), push(2, token)])
    assert {(r.error_code, r.retryable, r.retry_after) for r in (first, second)} == {
        ("UNAVAILABLE", True, 12.0),
        ("INTERNAL", True, None),
    }


async def test_configuration_errors_are_not_retried_nor_blamed_on_the_phone(
    channel: FcmChannel, fcm_emulator: FcmEmulator
) -> None:
    token = fcm_emulator.issue_token()
    fcm_emulator.fail_next(1, status=401, error_code="THIRD_PARTY_AUTH_ERROR")
    fcm_emulator.fail_next(1, status=403, error_code="SENDER_ID_MISMATCH")
    results = await channel.send([push(1, token), push(2, token)])
    assert sorted(r.error_code or "" for r in results) == [
        "SENDER_ID_MISMATCH",
        "THIRD_PARTY_AUTH_ERROR",
    ]
    assert not any(r.retryable or r.disable_device for r in results)
    assert all(r.detail.startswith("configuration error") for r in results)
