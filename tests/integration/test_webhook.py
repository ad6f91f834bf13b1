"""The webhook channel against a strict receiver on loopback: signed, retried, refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dispatcher.notify.base import Push
from dispatcher.notify.webhook import WebhookChannel
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "s3cret-shared-with-the-gateway"


def push(ref: int) -> Push:
    return Push(ref=ref, token="", platform="android", title="Harim · new incidents: 1",
                body="killed: 2", collapse_key="g1", data={"group_id": "g1", "seq": "1"},
                priority="high", leader="harim-lead-1")  # fmt: skip


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = await WebhookReceiver(SECRET).start()
    yield r
    await r.close()


async def test_a_signed_alert_is_delivered(receiver: WebhookReceiver) -> None:
    channel = WebhookChannel("sms", receiver.url, SECRET)
    try:
        (result,) = await channel.send([push(41)])
    finally:
        await channel.close()
    assert result.ok
    assert result.message_name == "sms/sms-1"
    (got,) = receiver.accepted
    assert got == {"leader": "harim-lead-1", "title": "Harim · new incidents: 1",
                   "body": "killed: 2", "priority": "high",
                   "data": {"group_id": "g1", "seq": "1"}, "idempotency_key": "41"}  # fmt: skip


async def test_a_wrong_secret_is_refused_for_good(receiver: WebhookReceiver) -> None:
    channel = WebhookChannel("sms", receiver.url, "not-the-shared-secret")
    try:
        (result,) = await channel.send([push(1)])
    finally:
        await channel.close()
    assert not result.ok
    assert not result.retryable, "a configuration error: retrying cannot help"
    assert result.error_code == "HTTP_401"
    assert receiver.refused == ["bad signature"]


async def test_a_busy_gateway_is_retried_and_a_dead_one_too(receiver: WebhookReceiver) -> None:
    receiver.fail_next.append(503)
    channel = WebhookChannel("sms", receiver.url, SECRET, timeout=2)
    dead = WebhookChannel("sms", "http://127.0.0.1:9/alerts", SECRET, timeout=2)
    try:
        (busy,) = await channel.send([push(1)])
        (unreachable,) = await dead.send([push(2)])
    finally:
        await channel.close()
        await dead.close()
    assert (busy.ok, busy.retryable, busy.error_code, busy.retry_after) == (
        False, True, "HTTP_503", 0.0,
    )  # fmt: skip
    assert (unreachable.retryable, unreachable.error_code) == (True, "NETWORK")
