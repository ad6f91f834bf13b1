"""The whole path to a browser: a field report reaches a leader's web app over Web Push.

The real service on a free port, a real SQLite file; phones on the FCM emulator, browsers
on the Web Push emulator, which checks the VAPID JWT and decrypts each push as the browser
would. Rules: tests/testdata/rules-e2e (group_wait 1s, group_interval 3s).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.testing.fcm_emulator import FcmEmulator
from dispatcher.testing.webpush_emulator import WebPushEmulator
from tests.support.harness import Keys, Running, fcm_push, running, settings_for
from tests.support.waiting import until

HARIM = {"lat": 36.12, "lon": 36.52}  # inside SY0703 Harim district, in SY07 Idleb


def report(rid: str, *, killed: int = 0, injured: int = 0, **more: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "source": "observatory",
        "kind": "airstrike",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=3)).isoformat(),
        "location": HARIM,
        "casualties": {"killed": killed, "injured": injured, "trapped": 0},
        **more,
    }


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("observatory", "reports:write")
    k.add("reader", "read")
    for leader in ("idleb-lead-1", "idleb-lead-2", "harim-lead-1"):
        k.add(f"phone-{leader}", "devices:write", leader=leader)
    return k


def web_settings(
    tmp_path: Path, keys: Keys, fcm: FcmEmulator, creds: Path, web: WebPushEmulator, **more: Any
) -> Any:
    push = fcm_push(fcm, creds, webpush={"allowed_origins": [web.origin]})
    return settings_for(tmp_path, keys, push=push, **more)


@pytest.fixture
async def service(
    tmp_path: Path,
    keys: Keys,
    fcm_emulator: FcmEmulator,
    fcm_credentials: Path,
    webpush_emulator: WebPushEmulator,
) -> AsyncIterator[Running]:
    settings = web_settings(tmp_path, keys, fcm_emulator, fcm_credentials, webpush_emulator)
    async with running(settings, keys) as svc:
        yield svc


async def subscribe(svc: Running, web: WebPushEmulator, leader: str, locale: str) -> str:
    """The web app's steps: fetch the VAPID key, subscribe with it, register the result."""
    status, vapid = await svc.get("/v1/webpush/vapid")
    assert status == 200
    subscription = web.subscribe(application_server_key=vapid["public_key"])
    status, body = await svc.post(
        "/v1/devices",
        {"platform": "web", "locale": locale, "subscription": subscription},
        key=f"phone-{leader}",
    )
    assert status == 201, body
    assert body["device"]["platform"] == "web"
    assert body["device"]["token"] == f"{web.origin}/…{subscription['endpoint'][-4:]}"
    return str(subscription["endpoint"])


async def test_a_report_reaches_a_browser_encrypted_in_its_leader_s_language(
    service: Running, webpush_emulator: WebPushEmulator, fcm_emulator: FcmEmulator
) -> None:
    web = webpush_emulator
    browser = await subscribe(service, web, "idleb-lead-1", "ar")
    english = await subscribe(service, web, "harim-lead-1", "en")
    phone = fcm_emulator.issue_token()
    status, _ = await service.post(
        "/v1/devices", {"token": phone, "platform": "android", "locale": "en"},
        key="phone-idleb-lead-2",
    )  # fmt: skip
    assert status == 201

    status, body = await service.post(
        "/v1/reports", report("w1", killed=2, injured=5), key="observatory"
    )
    assert status == 202, body
    await web.wait_for(2, within=10)
    (fcm,) = await fcm_emulator.wait_for(1, within=10)
    assert fcm.token == phone, "phones stay on FCM"
    (arabic,) = web.to(browser)
    (harim,) = web.to(english)
    idleb_group = fcm.data["group_id"]
    assert arabic.payload is not None
    assert harim.payload is not None
    assert arabic.payload["group_id"] == idleb_group
    # Arabic lines come wrapped in right-to-left embedding marks, as on FCM.
    assert arabic.payload["title"] == "\u202bإدلب · حوادث جديدة: 1\u202c"
    assert arabic.payload["body"].splitlines()[0] == "\u202bقتلى: 2 · جرحى: 5 · عالقون: 0\u202c"
    assert arabic.payload["url"] == f"/app/#group={idleb_group}"
    assert (arabic.payload["seq"], arabic.payload["kind"]) == (1, "update")
    assert arabic.payload["data"]["incidents"] == body["report"]["incident"]
    assert harim.payload["title"] == "Harim · new incidents: 1"
    assert harim.payload["body"].splitlines()[0] == "killed: 2 · injured: 5 · trapped: 0"
    assert arabic.topic == idleb_group
    assert harim.topic == harim.payload["group_id"]
    assert arabic.urgency == "normal", "not an immediate route"
    assert 3590 <= arabic.ttl <= 3600, "the route's ttl (1 h), less what has passed"
    assert arabic.size <= 4096

    async def listing() -> dict[str, Any]:
        status, body = await service.get(f"/v1/groups/{idleb_group}/deliveries", key="reader")
        assert status == 200
        return dict(body)

    recorded = await until(listing, lambda b: b["counts"]["sent"] == 2, what="both sent")
    sent = {d["channel"]: d for d in recorded["deliveries"]}
    assert set(sent) == {"webpush", "fcm"}
    assert sent["webpush"]["device"]["token"] == f"{web.origin}/…{browser[-4:]}"
    assert browser not in str(recorded), "an endpoint is never shown whole"

    # 10 killed: the immediate route pushes to the duty leader at once, Urgency: high.
    duty = await subscribe(service, web, "idleb-lead-2", "en")
    status, _ = await service.post("/v1/reports", report("w2", killed=10), key="observatory")
    assert status == 202
    urgent = await until(
        lambda: [p for p in web.received if p.urgency == "high"], what="an urgent web push"
    )
    assert [p.endpoint for p in urgent] == [duty]
    assert urgent[0].payload is not None
    assert urgent[0].payload["title"] == "Idleb · new incidents: 1", urgent[0].payload
    assert urgent[0].payload["body"].splitlines()[0] == "killed: 10 · injured: 0 · trapped: 0"


async def test_an_expired_subscription_is_disabled_and_sent_nothing_more(
    service: Running, webpush_emulator: WebPushEmulator
) -> None:
    web = webpush_emulator
    gone = await subscribe(service, web, "harim-lead-1", "en")
    kept = await subscribe(service, web, "harim-lead-1", "en")
    web.expire(gone)
    status, body = await service.post("/v1/reports", report("g1", killed=1), key="observatory")
    assert status == 202
    group = next(g for g in body["groups"])
    await web.wait_for(1, within=10)

    async def deliveries() -> list[dict[str, Any]]:
        _, listing = await service.get(f"/v1/groups/{group}/deliveries", key="reader")
        return list(listing["deliveries"])

    failed = await until(
        deliveries, lambda ds: any(d["status"] == "failed" for d in ds), what="a failed push"
    )
    dead = next(d for d in failed if d["status"] == "failed")
    assert dead["attempts"] == 1, "a gone subscription is not retried"
    assert dead["last_error"].startswith("GONE: the subscription has expired")
    tries = sum(1 for _, endpoint, _ in web.answers if endpoint == gone)
    assert tries == 1

    status, _ = await service.post("/v1/reports", report("g2", killed=3), key="observatory")
    assert status == 202
    await web.wait_for(2, within=10)
    second = [d for d in await deliveries() if d["seq"] == 2]
    assert [d["device"]["token"] for d in second] == [f"{web.origin}/…{kept[-4:]}"]
    assert sum(1 for _, endpoint, _ in web.answers if endpoint == gone) == 1


async def test_a_busy_push_service_is_tried_again_no_earlier_than_it_asked(
    service: Running, webpush_emulator: WebPushEmulator
) -> None:
    web = webpush_emulator
    browser = await subscribe(service, web, "harim-lead-1", "en")
    # retry_max is 1 s in these tests: only Retry-After can make the wait 2 s.
    web.fail_next(1, status=429, retry_after=2, endpoint=browser)
    status, _ = await service.post("/v1/reports", report("b1", killed=1), key="observatory")
    assert status == 202
    await web.wait_for(1, within=15)
    (busy, ok) = [(at, status) for at, endpoint, status in web.answers if endpoint == browser]
    assert (busy[1], ok[1]) == (429, 201)
    assert ok[0] - busy[0] >= timedelta(seconds=2)


async def test_a_browser_is_registered_only_on_a_known_push_service(service: Running) -> None:
    keys = {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-"
                      "Ts1XbjhazAkj7I99e8QcYP7DkM", "auth": "tBHItJI5svbpez7KI4CCXg"}  # fmt: skip
    good: dict[str, Any] = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bHk",
        "expirationTime": None,
        "keys": keys,
    }

    async def device(body: dict[str, Any]) -> tuple[int, Any]:
        return await service.post("/v1/devices", body, key="phone-harim-lead-1")

    status, body = await device({"platform": "web", "locale": "en", "subscription": good})
    assert status == 201, body
    assert body["device"]["token"] == "https://fcm.googleapis.com/…1bHk"
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"subscription": {**good, "endpoint": "https://attacker.example/hook"}},
         ["subscription.endpoint"]),
        ({"subscription": {**good, "endpoint": "http://127.0.0.1:8080/v1/admin/rules/reload"}},
         ["subscription.endpoint"]),
        ({"subscription": {**good, "keys": {**keys, "p256dh": "BAAA"}}},
         ["subscription.keys.p256dh"]),
        ({"subscription": {**good, "keys": {**keys, "auth": "c2hvcnQ"}}},
         ["subscription.keys.auth"]),
        ({"subscription": {**good, "keys": {"p256dh": keys["p256dh"]}}},
         ["subscription.keys.auth"]),
        ({}, ["subscription"]),
        ({"token": "x" * 40, "subscription": good}, ["token"]),
    ]  # fmt: skip
    for extra, fields in cases:
        status, body = await device({"platform": "web", "locale": "en", **extra})
        assert status == 422, (extra, body)
        assert [e["field"] for e in body["errors"]] == fields, body
    status, body = await device({"platform": "web", "subscription": {
        **good, "endpoint": "https://attacker.example/hook"}})  # fmt: skip
    assert "push.webpush.allowed_origins" in body["errors"][0]["message"]
    status, body = await device({"platform": "android", "subscription": good})
    assert status == 422
    assert sorted(e["field"] for e in body["errors"]) == ["subscription", "token"]

    async def delete(body: dict[str, Any], key: str = "phone-harim-lead-1") -> int:
        headers = {"Authorization": f"Bearer {service.keys.plain[key]}"}
        async with service.http.delete(
            service.url + "/v1/devices", json=body, headers=headers
        ) as resp:
            return resp.status

    assert await delete({"endpoint": good["endpoint"]}, "phone-idleb-lead-1") == 404
    assert await delete({"endpoint": good["endpoint"]}) == 204
    assert await delete({"endpoint": good["endpoint"]}) == 404
    assert await delete({}) == 422


async def test_the_vapid_key_is_made_once_and_kept_across_restarts(
    tmp_path: Path,
    keys: Keys,
    fcm_emulator: FcmEmulator,
    fcm_credentials: Path,
    webpush_emulator: WebPushEmulator,
) -> None:
    settings = web_settings(tmp_path, keys, fcm_emulator, fcm_credentials, webpush_emulator)
    async with running(settings, keys) as svc:
        status, first = await svc.get("/v1/webpush/vapid")
        assert status == 200
        endpoint = await subscribe(svc, webpush_emulator, "harim-lead-1", "en")
    async with running(settings, keys) as svc:
        _, again = await svc.get("/v1/webpush/vapid")
        assert again == first
        assert len(first["public_key"]) == 87  # 65 octets, base64url
        # The subscription made before the restart is bound to that key: pushes still go.
        status, _ = await svc.post("/v1/reports", report("k1", killed=1), key="observatory")
        assert status == 202
        (push,) = await webpush_emulator.wait_for(1, within=10)
        assert push.endpoint == endpoint


async def test_a_minimal_payload_route_pushes_only_a_reference(
    tmp_path: Path,
    keys: Keys,
    fcm_emulator: FcmEmulator,
    fcm_credentials: Path,
    webpush_emulator: WebPushEmulator,
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).parents[1] / "testdata" / "rules-e2e", rules)
    routes = rules / "routes.yaml"
    routes.write_text(
        routes.read_text().replace(
            "      receiver: harim-center\n",
            "      receiver: harim-center\n      payload: minimal\n",
        )
    )
    settings = web_settings(
        tmp_path, keys, fcm_emulator, fcm_credentials, webpush_emulator,
        rules={"path": str(rules)},
    )  # fmt: skip
    web = webpush_emulator
    async with running(settings, keys) as svc:
        harim = await subscribe(svc, web, "harim-lead-1", "en")
        idleb = await subscribe(svc, web, "idleb-lead-2", "en")
        status, body = await svc.post("/v1/reports", report("m1", killed=4), key="observatory")
        assert status == 202
        harim_group = body["groups"][0]
        await web.wait_for(2, within=10)
        (quiet,) = web.to(harim)
        assert quiet.payload == {"group_id": harim_group, "seq": 1, "kind": "update",
                                 "minimal": True}  # fmt: skip
        for secret in ("Harim", "حارم", "killed", "36.12", "SY07"):
            assert secret.encode() not in quiet.plaintext
        (full,) = web.to(idleb)
        assert full.payload is not None
        assert full.payload["title"] == "Idleb · new incidents: 1"
        status, update = await svc.get(
            f"/v1/groups/{harim_group}/updates/1", key="phone-harim-lead-1"
        )
        assert status == 200, update
        assert update["title"] == "Harim · new incidents: 1"
