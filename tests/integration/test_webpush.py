"""The Web Push channel against the Web Push emulator on loopback: real HTTP, real
encryption, the emulator decrypting as the browser would."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from py_vapid import Vapid02

from dispatcher.notify.base import Push
from dispatcher.notify.webpush import Vapid, WebPushChannel, new_vapid_pem
from dispatcher.testing.webpush_emulator import WebPushEmulator

GROUP = "7c" * 16


@pytest.fixture
async def channel(webpush_emulator: WebPushEmulator) -> AsyncIterator[WebPushChannel]:
    vapid = Vapid(new_vapid_pem(), "mailto:ops@example.org")
    ch = WebPushChannel(vapid, allowed_origins=[webpush_emulator.origin], timeout=2.0)
    yield ch
    await ch.close()


def push(ref: int, sub: dict[str, Any], **more: Any) -> Push:
    fields: dict[str, Any] = {
        "ref": ref, "token": sub["endpoint"], "platform": "web",
        "p256dh": sub["keys"]["p256dh"], "auth": sub["keys"]["auth"],
        "title": "إدلب · حوادث جديدة: 1", "body": "قتلى: 2 · جرحى: 7",
        "collapse_key": GROUP, "priority": "high", "ttl": timedelta(minutes=10),
        "data": {"group_id": GROUP, "seq": str(ref), "kind": "update"},
    }  # fmt: skip
    fields.update(more)
    return Push(**fields)


async def test_pushes_arrive_decrypted_with_their_headers(
    channel: WebPushChannel, webpush_emulator: WebPushEmulator
) -> None:
    emu = webpush_emulator
    subs = [emu.subscribe(channel.vapid.public_key) for _ in range(3)]
    results = await channel.send(
        [
            push(1, subs[0]),
            push(2, subs[1], priority="normal", ttl=timedelta(seconds=90)),
            push(3, subs[2]),
        ]
    )
    assert [r.ok for r in results] == [True, True, True]
    assert all(r.message_name and r.message_name.startswith(emu.origin) for r in results)
    first, second = emu.to(subs[0]["endpoint"])[0], emu.to(subs[1]["endpoint"])[0]
    assert first.payload == {
        "group_id": GROUP, "seq": 1, "kind": "update", "title": "إدلب · حوادث جديدة: 1",
        "body": "قتلى: 2 · جرحى: 7", "url": f"/app/#group={GROUP}", "data": {},
    }  # fmt: skip
    assert (first.urgency, first.ttl, first.topic) == ("high", 600, GROUP)
    assert (second.urgency, second.ttl) == ("normal", 90)
    assert first.claims["aud"] == emu.origin
    assert first.claims["sub"] == "mailto:ops@example.org"
    assert first.vapid_key == channel.vapid.public_key
    assert channel.vapid.signed == 1, "one JWT for the push service, not one per message"
    await channel.send([push(4, subs[0])])
    assert channel.vapid.signed == 1


async def test_a_long_update_arrives_shortened_within_4_kb(
    channel: WebPushChannel, webpush_emulator: WebPushEmulator
) -> None:
    emu = webpush_emulator
    sub = emu.subscribe(channel.vapid.public_key)
    long_body = "\n".join(f"حارم · قتلى: {n} · جرحى: {n * 2}" for n in range(400))
    (result,) = await channel.send([push(1, sub, body=long_body)])
    assert result.ok, result
    (got,) = emu.to(sub["endpoint"])
    assert got.size == 4096, "as much as fits, and not one octet more"
    assert got.payload is not None
    assert got.payload["title"] == "إدلب · حوادث جديدة: 1"
    assert got.payload["body"].endswith("…")
    assert long_body.startswith(got.payload["body"][:-1])


async def test_a_newer_push_of_a_group_replaces_an_undelivered_older_one(
    channel: WebPushChannel, webpush_emulator: WebPushEmulator
) -> None:
    emu = webpush_emulator
    sub = emu.subscribe(channel.vapid.public_key)
    other = "ab" * 16
    for ref, key in ((1, GROUP), (2, other), (3, GROUP)):
        data = {"group_id": key, "seq": str(ref), "kind": "update"}
        (result,) = await channel.send([push(ref, sub, collapse_key=key, data=data)])
        assert result.ok
    waiting = emu.deliver(sub["endpoint"])
    assert [(p.topic, p.payload and p.payload["seq"]) for p in waiting] == [(other, 2), (GROUP, 3)]
    assert emu.deliver(sub["endpoint"]) == []


async def test_an_expired_subscription_is_disabled(
    channel: WebPushChannel, webpush_emulator: WebPushEmulator
) -> None:
    emu = webpush_emulator
    gone, fine = emu.subscribe(), emu.subscribe()
    emu.expire(gone["endpoint"])
    unknown = {**fine, "endpoint": f"{emu.origin}/push/nobody-has-this"}
    results = await channel.send([push(1, gone), push(2, fine), push(3, unknown)])
    assert [(r.ok, r.error_code, r.disable_device, r.retryable) for r in results] == [
        (False, "GONE", True, False),
        (True, None, False, False),
        (False, "NOT_FOUND", True, False),
    ]
    assert gone["endpoint"] not in results[0].detail


async def test_busy_down_dropped_and_slow_are_retried_honouring_retry_after(
    channel: WebPushChannel, webpush_emulator: WebPushEmulator
) -> None:
    emu = webpush_emulator
    busy, down, dropped, slow = (emu.subscribe() for _ in range(4))
    emu.fail_next(1, status=429, retry_after=7, endpoint=busy["endpoint"])
    emu.fail_next(1, status=503, retry_after=30, endpoint=down["endpoint"])
    emu.fail_next(1, drop=True, endpoint=dropped["endpoint"])
    emu.slow_down(slow["endpoint"], 3.0)  # the channel waits 2 s
    results = await channel.send([push(1, busy), push(2, down), push(3, dropped), push(4, slow)])
    assert [(r.error_code, r.retryable, r.retry_after, r.disable_device) for r in results] == [
        ("TOO_MANY_REQUESTS", True, 7, False),
        ("HTTP_503", True, 30, False),
        ("UNAVAILABLE", True, None, False),
        ("TIMEOUT", True, None, False),
    ]
    again = await channel.send([push(5, busy), push(6, down), push(7, dropped)])
    assert [r.ok for r in again] == [True, True, True]


async def test_a_key_the_subscription_was_not_made_with_is_a_configuration_error_told_once(
    channel: WebPushChannel, webpush_emulator: WebPushEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = webpush_emulator
    someone_else = Vapid(new_vapid_pem(), "mailto:x@example.org").public_key
    subs = [emu.subscribe(someone_else) for _ in range(3)]
    with caplog.at_level(logging.ERROR, logger="dispatcher.push.webpush"):
        results = await channel.send([push(i, s) for i, s in enumerate(subs)])
    assert {(r.error_code, r.retryable, r.disable_device) for r in results} == {
        ("VAPID_REFUSED", False, False)
    }
    assert "applicationServerKey" in results[0].detail
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 1, told
    assert "configuration error" in told[0]
    assert emu.received == []


async def test_endpoints_off_the_allowlist_are_never_called(
    channel: WebPushChannel, webpush_emulator: WebPushEmulator
) -> None:
    emu = webpush_emulator
    sub = emu.subscribe()
    elsewhere = {**sub, "endpoint": sub["endpoint"].replace("127.0.0.1", "localhost")}
    (result,) = await channel.send([push(1, elsewhere)])
    assert (result.error_code, result.retryable, result.disable_device) == (
        "ENDPOINT_REFUSED", False, False)  # fmt: skip
    assert emu.answers == []


async def test_the_emulator_refuses_what_push_services_refuse(
    channel: WebPushChannel, webpush_emulator: WebPushEmulator
) -> None:
    emu = webpush_emulator
    sub = emu.subscribe()
    now = time.time()
    good = channel.vapid.header(emu.origin, now)
    other_aud = channel.vapid.header("https://fcm.googleapis.com", now)
    expired = Vapid(new_vapid_pem(), "mailto:x@example.org").header(emu.origin, now - 13 * 3600)
    signer = Vapid02.from_pem(new_vapid_pem().encode())
    claims = {"aud": emu.origin, "sub": "mailto:x@example.org", "exp": int(now) + 25 * 3600}
    too_long = signer.sign(claims)["Authorization"]
    base = {"TTL": "60", "Content-Encoding": "aes128gcm", "Authorization": good}
    cases: list[tuple[dict[str, str], bytes, int]] = [
        ({**base, "Authorization": "Bearer x"}, b"x", 401),
        ({**base, "Authorization": other_aud}, b"x", 401),
        ({**base, "Authorization": good.replace("t=eyJ", "t=eyK")}, b"x", 401),
        ({**base, "Authorization": expired}, b"x", 401),
        ({**base, "Authorization": too_long}, b"x", 401),
        ({k: v for k, v in base.items() if k != "TTL"}, b"x", 400),
        ({**base, "Content-Encoding": "aesgcm"}, b"x", 400),
        ({**base, "Urgency": "urgent"}, b"x", 400),
        ({**base, "Topic": "a" * 33}, b"x", 400),
        (base, b"x" * 4097, 413),
        (base, b"x" * 200, 400),  # does not decrypt
    ]
    async with aiohttp.ClientSession() as http:
        for headers, body, status in cases:
            async with http.post(sub["endpoint"], data=body, headers=headers) as resp:
                assert resp.status == status, (headers, await resp.text())
    assert [why.split(" ")[:3] for _, why in emu.rejected] == [
        ["Authorization", "must", "use"], ["aud", "must", "be"], ["the", "JWT's", "signature"],
        ["the", "JWT", "has"], ["exp", "is", "more"], ["a", "TTL", "header"],
        ["Content-Encoding", "must", "be"], ["Urgency", "must", "be"], ["Topic", "must", "be"],
        ["the", "payload", "is"], ["the", "browser", "could"],
    ]  # fmt: skip
    assert emu.received == []


async def test_apple_refuses_the_default_subject_and_the_log_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with WebPushEmulator(like_apple=True) as apple:
        placeholder = Vapid(new_vapid_pem(), "mailto:operator@localhost")
        channel = WebPushChannel(placeholder, allowed_origins=[apple.origin])
        subs = [apple.subscribe(placeholder.public_key) for _ in range(2)]
        with caplog.at_level(logging.ERROR, logger="dispatcher.push.webpush"):
            results = await channel.send([push(1, subs[0]), push(2, subs[1])])
        await channel.close()
        assert {(r.error_code, r.retryable, r.disable_device) for r in results} == {
            ("VAPID_REFUSED", False, False)
        }
        assert results[0].detail.endswith("(key or subject): BadJwtToken")
        assert len(caplog.records) == 1

        real = Vapid(new_vapid_pem(), "mailto:ops@example.org")
        channel = WebPushChannel(real, allowed_origins=[apple.origin])
        (ok,) = await channel.send([push(3, apple.subscribe(real.public_key))])
        await channel.close()
        assert ok.ok
