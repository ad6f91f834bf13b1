"""When FCM cannot reach a leader, the alert goes to their fallback channel: a signed
webhook (an SMS gateway here, played by a strict receiver on loopback).

Rules: tests/testdata/rules-e2e, where Harim Center's fallback is the webhook `sms`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatcher.testing.fcm_emulator import FcmEmulator
from tests.support.harness import Keys, fcm_push, running, settings_for
from tests.support.waiting import until
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "gateway-secret-0123456789"


def report(rid: str, killed: int) -> dict[str, Any]:
    return {"id": rid, "source": "observatory", "kind": "airstrike",
            "occurred_at": (datetime.now(UTC) - timedelta(minutes=2)).isoformat(),
            "location": {"lat": 36.12, "lon": 36.52}, "casualties": {"killed": killed}}  # fmt: skip


async def test_a_leader_without_a_reachable_phone_gets_the_alert_by_webhook(
    tmp_path: Path, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    keys = Keys()
    keys.add("observatory", "reports:write")
    keys.add("reader", "read")
    keys.add("phone", "devices:write", leader="harim-lead-1")
    gateway = await WebhookReceiver(SECRET).start()
    settings = settings_for(
        tmp_path,
        keys,
        push=fcm_push(
            fcm_emulator,
            fcm_credentials,
            webhooks=[{"name": "sms", "url": gateway.url, "secret": SECRET}],
        ),
    )
    try:
        async with running(settings, keys) as svc:
            assert any("fallback: webhook 'sms'" in line for line in svc.service.banner("x"))
            # No phone registered: the first update goes straight to the gateway.
            status, body = await svc.post("/v1/reports", report("f1", 2), key="observatory")
            assert status == 202
            harim_group = body["groups"][0]
            await until(lambda: len(gateway.accepted), lambda n: n == 1, what="the webhook")
            (first,) = gateway.accepted
            assert first["leader"] == "harim-lead-1"
            assert first["title"] == "Harim · new incidents: 1"
            assert first["data"]["group_id"] == harim_group

            # A phone registers, then its app is removed: FCM says UNREGISTERED, and the next
            # update reaches the leader through the gateway all the same.
            token = fcm_emulator.issue_token()
            status, _ = await svc.post("/v1/devices", {"token": token, "platform": "android",
                                       "locale": "en"}, key="phone")  # fmt: skip
            assert status == 201
            fcm_emulator.unregister(token)
            status, _ = await svc.post("/v1/reports", report("f2", 3), key="observatory")
            assert status == 202
            await until(lambda: len(gateway.accepted), lambda n: n == 2, what="a second webhook")
            assert gateway.accepted[1]["data"]["seq"] == "2"
            assert gateway.accepted[1]["body"].splitlines()[0] == (
                "killed: 5 · injured: 0 · trapped: 0"
            )
            assert gateway.refused == []

            # The webhook has the message before the sender records it as sent.
            async def deliveries() -> list[dict[str, Any]]:
                status, got = await svc.get(f"/v1/groups/{harim_group}/deliveries", key="reader")
                assert status == 200
                return list(got["deliveries"])

            done = await until(
                deliveries, lambda ds: all(d["status"] != "pending" for d in ds),
                what="every delivery recorded",
            )  # fmt: skip
            rows = [(d["seq"], d["channel"], d["status"]) for d in done]
            assert rows == [(1, "sms", "sent"), (2, "fcm", "failed"), (2, "sms", "sent")]
            assert done[1]["last_error"].startswith("UNREGISTERED")
    finally:
        await gateway.close()
