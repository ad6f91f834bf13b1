"""The whole path: a field report reaches team leaders' phones through FCM.

The real service on a free port, a real SQLite file, the FCM channel talking to the FCM
emulator on loopback. Rules: tests/testdata/rules-e2e (group_wait 1s, group_interval 3s).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from dispatcher.testing.fcm_emulator import FcmEmulator, ReceivedMessage
from tests.support.harness import Keys, Running, fcm_push, running, settings_for
from tests.support.waiting import until

HARIM = {"lat": 36.12, "lon": 36.52}  # inside SY0703 Harim district, in SY07 Idleb


def report(
    rid: str, *, killed: int = 0, injured: int = 0, trapped: int = 0, **more: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "source": "observatory",
        "kind": "airstrike",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=3)).isoformat(),
        "location": HARIM,
        "casualties": {"killed": killed, "injured": injured, "trapped": trapped},
    }
    body.update(more)
    return body


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("observatory", "reports:write")
    k.add("reader", "read")
    for leader in ("idleb-lead-1", "idleb-lead-2", "harim-lead-1"):
        k.add(f"phone-{leader}", "devices:write", leader=leader)
    return k


@pytest.fixture
async def service(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> AsyncIterator[Running]:
    settings = settings_for(
        tmp_path,
        keys,
        push=fcm_push(fcm_emulator, fcm_credentials),
    )
    async with running(settings, keys) as svc:
        yield svc


async def register(svc: Running, emu: FcmEmulator, leader: str, platform: str, locale: str) -> str:
    token = emu.issue_token(platform)
    status, body = await svc.post(
        "/v1/devices",
        {"token": token, "platform": platform, "locale": locale},
        key=f"phone-{leader}",
    )
    assert status == 201, body
    assert body["device"]["leader"] == leader
    assert token not in str(body), "a token is never shown whole"
    return token


def by_token(messages: list[ReceivedMessage]) -> dict[str, ReceivedMessage]:
    return {m.token: m for m in messages}


async def test_a_report_reaches_every_leader_once_per_group_interval(
    service: Running, fcm_emulator: FcmEmulator
) -> None:
    emu = fcm_emulator
    idleb_1_phone = await register(service, emu, "idleb-lead-1", "android", "ar")
    idleb_1_tablet = await register(service, emu, "idleb-lead-1", "ios", "ar")
    idleb_2 = await register(service, emu, "idleb-lead-2", "android", "en")
    harim_1 = await register(service, emu, "harim-lead-1", "android", "en")

    status, body = await service.post(
        "/v1/reports", report("r1", killed=2, injured=5), key="observatory"
    )
    assert status == 202, body
    assert body["report"]["region"] == "SY0703"
    assert body["region"]["path"] == ["SY07", "SY0703"]
    assert body["region"]["name"] == "Harim"

    # group_wait (1s) plus a tick: one push per device of every leader routed to.
    first = await emu.wait_for(4, within=10)
    pushes = by_token(first)
    assert set(pushes) == {idleb_1_phone, idleb_1_tablet, idleb_2, harim_1}
    assert pushes[idleb_2].title == "Idleb · new incidents: 1"
    assert pushes[idleb_2].body.splitlines()[0] == "killed: 2 · injured: 5 · trapped: 0"
    assert pushes[harim_1].title == "Harim · new incidents: 1"
    assert "إدلب" in pushes[idleb_1_phone].title, "the Idleb team's group is the governorate's"
    assert "حارم" not in pushes[idleb_1_phone].title
    assert "قتلى: 2" in pushes[idleb_1_phone].body
    # One collapse key per group: the Idleb team's group and the Harim team's group.
    idleb_group = pushes[idleb_2].data["group_id"]
    harim_group = pushes[harim_1].data["group_id"]
    assert idleb_group != harim_group
    assert pushes[idleb_1_phone].android["collapse_key"] == idleb_group
    assert pushes[idleb_1_tablet].apns["headers"]["apns-collapse-id"] == idleb_group
    assert pushes[harim_1].android["collapse_key"] == harim_group
    assert {p.data["seq"] for p in first} == {"1"}
    assert pushes[idleb_2].data["incidents"] == body["report"]["incident"]

    # Three more reports in the same groups: one update per device, not one per report.
    for rid, killed in (("r2", 1), ("r3", 0), ("r4", 4)):
        status, _ = await service.post(
            "/v1/reports", report(rid, killed=killed, trapped=1), key="observatory"
        )
        assert status == 202
    both = await emu.wait_for(8, within=10)
    second = by_token(both[4:])
    assert set(second) == {idleb_1_phone, idleb_1_tablet, idleb_2, harim_1}
    assert second[idleb_2].title == "Idleb · new incidents: 3"
    assert second[idleb_2].body.splitlines()[0] == "killed: 7 · injured: 5 · trapped: 3"
    assert second[idleb_2].data["seq"] == "2"
    assert second[idleb_2].data["group_id"] == idleb_group
    gap = second[idleb_2].received_at - pushes[idleb_2].received_at
    assert gap >= timedelta(seconds=2.9), "at most one update per group_interval"

    # A second observer of one of those strikes, with lower figures: the same incident, the
    # same counts, so no update goes out.
    second_sighting = {**report("s1", killed=1), "source": "spotter"}
    status, body = await service.post("/v1/reports", second_sighting, key="observatory")
    assert status == 202
    assert body["merged"] is True
    # The groups' next flush looks at them and finds nothing to tell: no third update.
    store = service.service.store
    for group_id in body["groups"]:
        group = await until(
            partial(store.get_group, group_id),
            lambda g: g is not None and not g.pending,
            what="the flush after the second sighting",
        )
        assert group is not None
        assert group.seq == 2
    assert len(emu.received) == 8


async def test_a_retried_report_and_a_correction_never_count_twice(
    service: Running, fcm_emulator: FcmEmulator
) -> None:
    emu = fcm_emulator
    harim_1 = await register(service, emu, "harim-lead-1", "android", "en")
    x1 = report("x1", killed=3)
    status, _ = await service.post("/v1/reports", x1, key="observatory")
    assert status == 202
    status, body = await service.post("/v1/reports", x1, key="observatory")
    assert status == 200, "the same revision again is answered from the store"
    assert body["status"] == "duplicate"
    (first,) = await emu.wait_for(1, within=10)
    assert first.token == harim_1
    assert first.body.splitlines()[0] == "killed: 3 · injured: 0 · trapped: 0"

    status, _ = await service.post(
        "/v1/reports", report("x1", killed=5, revision=2), key="observatory"
    )
    assert status == 202
    status, body = await service.post("/v1/reports", x1, key="observatory")
    assert status == 200, "a late retry of revision 1 changes nothing"
    assert body["report"]["casualties"]["killed"] == 3
    second = (await emu.wait_for(2, within=10))[1]
    assert second.title == "Harim · revised: 1"
    assert second.body.splitlines()[:2] == [
        "killed: 5 · injured: 0 · trapped: 0",  # not 8: a revision replaces, never adds
        "revised: killed 3→5",
    ]

    status, body = await service.post(
        "/v1/reports", report("y1", killed=1, revision=3), key="observatory"
    )
    assert status == 202
    status, body = await service.post(
        "/v1/reports", report("y1", killed=9, revision=2), key="observatory"
    )
    assert status == 409, "an older revision than the stored one"
    assert body["stored"]["revision"] == 3
    third = (await emu.wait_for(3, within=10))[2]
    assert third.body.splitlines()[0] == "killed: 6 · injured: 0 · trapped: 0"

    status, _ = await service.post(
        "/v1/reports", report("y1", killed=1, revision=4, status="retracted"), key="observatory"
    )
    assert status == 202
    fourth = (await emu.wait_for(4, within=10))[3]
    assert fourth.title == "Harim · retracted: 1"
    assert fourth.body.splitlines()[0] == "killed: 5 · injured: 0 · trapped: 0"

    status, body = await service.get("/v1/reports/observatory/x1", key="reader")
    assert status == 200
    assert [r["casualties"]["killed"] for r in body["revisions"]] == [3, 5]
    assert body["report"]["revision"] == 2


async def test_writes_need_a_key_with_the_right_scope(service: Running) -> None:
    status, body = await service.post("/v1/reports", report("a"), key=None)
    assert status == 401
    assert body["status"] == 401
    status, _ = await service.post(
        "/v1/reports", report("a"), key=None, headers={"Authorization": "Bearer nope"}
    )
    assert status == 401
    status, body = await service.post("/v1/reports", report("a"), key="reader")
    assert status == 403
    assert "reports:write" in body["detail"]
    status, body = await service.post(
        "/v1/devices", {"token": "x" * 40, "platform": "android"}, key="observatory"
    )
    assert status == 403


async def test_a_bad_report_is_refused_naming_each_field_and_nothing_is_stored(
    service: Running,
) -> None:
    bad = report("bad", kind="meteor", colour="red")
    bad["casualties"]["killed"] = -1
    status, body = await service.post("/v1/reports", bad, key="observatory")
    assert status == 422
    assert sorted(e["field"] for e in body["errors"]) == ["casualties.killed", "colour", "kind"]
    status, body = await service.post("/v1/reports", report("r", region="SY99"), key="observatory")
    assert status == 422
    assert body["errors"] == [{"field": "region", "message": "unknown region 'SY99'"}]
    assert await service.service.store.count_reports() == 0


async def test_health(service: Running) -> None:
    status, body = await service.get("/healthz")
    assert status == 200
    assert body["status"] == "ok"
    assert body["rules_version"] == service.service.rules.current.version


async def test_phones_sign_out_and_refresh_their_tokens(
    service: Running, fcm_emulator: FcmEmulator
) -> None:
    emu = fcm_emulator
    old_phone = await register(service, emu, "harim-lead-1", "android", "en")
    tablet = await register(service, emu, "harim-lead-1", "ios", "en")
    new_phone = emu.issue_token("android")
    status, body = await service.post(
        "/v1/devices",
        {"token": new_phone, "platform": "android", "locale": "en", "replaces": old_phone},
        key="phone-harim-lead-1",
    )
    assert status == 201, body

    async def delete(token: str, key: str) -> int:
        headers = {"Authorization": f"Bearer {service.keys.plain[key]}"}
        async with service.http.delete(
            service.url + "/v1/devices", json={"token": token}, headers=headers
        ) as resp:
            return resp.status

    assert await delete(tablet, "phone-idleb-lead-1") == 404, "not another leader's phone"
    assert await delete(tablet, "phone-harim-lead-1") == 204
    assert await delete(tablet, "phone-harim-lead-1") == 404, "already signed out"

    status, _ = await service.post("/v1/reports", report("z1", killed=1), key="observatory")
    assert status == 202
    (push,) = await emu.wait_for(1, within=10)
    assert push.token == new_phone, "only the current token of the phone still signed in"
    counts = await until(
        service.service.store.notification_counts,
        lambda c: not c.get("pending"),
        what="no push left to send",
    )
    # One sent to the new phone; Idleb's two leaders, who have none, are kept as failed.
    assert counts == {"sent": 1, "failed": 2}
    assert len(emu.received) == 1


async def test_an_immediate_route_pushes_each_report_at_once_to_one_leader(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    # A tick of a minute: anything that arrives within seconds was pushed without waiting.
    settings = settings_for(
        tmp_path,
        keys,
        push=fcm_push(fcm_emulator, fcm_credentials),
        scheduler={"tick": "60s"},
    )
    emu = fcm_emulator
    async with running(settings, keys) as svc:
        idleb_2 = await register(svc, emu, "idleb-lead-2", "android", "en")
        harim_1 = await register(svc, emu, "harim-lead-1", "android", "en")

        status, _ = await svc.post("/v1/reports", report("m1", killed=12), key="observatory")
        assert status == 202
        (first,) = await emu.wait_for(1, within=5)
        assert first.token == idleb_2, "the route's receiver is one leader, not a team"
        assert first.android["priority"] == "high"
        assert first.body.splitlines()[0] == "killed: 12 · injured: 0 · trapped: 0"

        # Each qualifying report is its own push, with no group_interval between them.
        status, _ = await svc.post("/v1/reports", report("m2", killed=15), key="observatory")
        assert status == 202
        second = (await emu.wait_for(2, within=5))[1]
        assert second.token == idleb_2
        assert second.data["seq"] == "2"
        assert second.body.splitlines()[0] == "killed: 27 · injured: 0 · trapped: 0"

        # Below the threshold: only the digest routes take it, and they wait for the tick.
        status, _ = await svc.post("/v1/reports", report("m3", killed=1), key="observatory")
        assert status == 202
        await svc.service.pipeline.drain()  # an immediate push would have been sent by now
        assert [m.token for m in emu.received] == [idleb_2, idleb_2]
        assert harim_1 not in {m.token for m in emu.received}


async def test_operators_see_what_became_of_every_push(
    service: Running, fcm_emulator: FcmEmulator
) -> None:
    emu = fcm_emulator
    flaky = await register(service, emu, "harim-lead-1", "android", "en")
    gone = await register(service, emu, "idleb-lead-1", "android", "ar")
    emu.unregister(gone)
    # 429: only the outbox retries it (firebase-admin's own async path did not).
    emu.fail_next(1, status=429, error_code="QUOTA_EXCEEDED", retry_after=1, token=flaky)
    status, body = await service.post("/v1/reports", report("d1", killed=1), key="observatory")
    assert status == 202
    assert body["routes"] == ["harim", "idleb"]
    harim_group, idleb_group = body["groups"]
    await emu.wait_for(1, within=10)  # the flaky phone's push, after one retry

    # The emulator has the push a moment before the sender records its outcome.
    async def deliveries() -> dict[str, Any]:
        status, got = await service.get(f"/v1/groups/{harim_group}/deliveries", key="reader")
        assert status == 200, got
        return dict(got)

    got = await until(deliveries, lambda d: d["deliveries"][0]["status"] != "pending",
                      what="the push's outcome")  # fmt: skip
    (harim,) = got["deliveries"]
    assert harim["leader"] == "harim-lead-1"
    assert harim["status"] == "sent"
    assert harim["retries"] == 1, got
    assert harim["message_name"].startswith("projects/")
    assert flaky not in str(got), "never a whole token"

    status, got = await service.get(f"/v1/groups/{idleb_group}/deliveries", key="reader")
    by_leader = {d["leader"]: d for d in got["deliveries"]}
    assert by_leader["idleb-lead-1"]["status"] == "failed"
    assert by_leader["idleb-lead-1"]["last_error"].startswith("UNREGISTERED")
    assert by_leader["idleb-lead-2"]["last_error"] == "no registered device"
    assert got["counts"]["failed"] == 2

    status, _ = await service.get(f"/v1/groups/{'0' * 32}/deliveries", key="reader")
    assert status == 404
    status, _ = await service.get(f"/v1/groups/{harim_group}/deliveries", key=None)
    assert status == 401

    async with service.http.get(
        service.url + "/metrics",
        headers={"Authorization": f"Bearer {service.keys.plain['reader']}"},
    ) as resp:
        assert resp.status == 200
        text = await resp.text()
    assert 'dispatcher_reports_total{outcome="created"} 1.0' in text
    assert 'dispatcher_push_attempts_total{channel="fcm",result="retry"} 1.0' in text
    assert 'dispatcher_push_attempts_total{channel="fcm",result="sent"} 1.0' in text
    assert 'dispatcher_push_errors_total{channel="fcm",code="UNREGISTERED"} 1.0' in text
    assert 'dispatcher_push_errors_total{channel="fcm",code="QUOTA_EXCEEDED"} 1.0' in text
    assert 'dispatcher_notifications{status="failed"} 2.0' in text
    assert 'dispatcher_rules_info{version="' in text


async def test_a_minimal_payload_route_pushes_only_a_reference(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
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
    settings = settings_for(
        tmp_path,
        keys,
        push=fcm_push(fcm_emulator, fcm_credentials),
        rules={"path": str(rules)},
    )
    emu = fcm_emulator
    async with running(settings, keys) as svc:
        harim = await register(svc, emu, "harim-lead-1", "android", "en")
        idleb = await register(svc, emu, "idleb-lead-2", "android", "en")
        status, body = await svc.post("/v1/reports", report("p1", killed=4), key="observatory")
        assert status == 202
        harim_group = body["groups"][0]
        pushes = by_token(await emu.wait_for(2, within=10))
        quiet = pushes[harim]
        assert (quiet.title, quiet.body) == ("New alert", "Open the app to read it.")
        assert quiet.data == {"group_id": harim_group, "seq": "1", "kind": "update"}
        raw = json.dumps(quiet.raw, ensure_ascii=False)
        for secret in ("Harim", "حارم", "Idleb", "killed", "قتلى", "36.12", "SY07"):
            assert secret not in raw, f"{secret!r} is on the wire"
        assert pushes[idleb].title == "Idleb · new incidents: 1", "other routes are unchanged"

        status, update = await svc.get(
            f"/v1/groups/{harim_group}/updates/1", key="phone-harim-lead-1"
        )
        assert status == 200, update
        assert update["title"] == "Harim · new incidents: 1"
        assert update["body"].splitlines()[0] == "killed: 4 · injured: 0 · trapped: 0"
        assert update["totals"]["killed"] == 4
        status, _ = await svc.get(f"/v1/groups/{harim_group}/updates/1", key="phone-idleb-lead-2")
        assert status == 404, "only a leader the update was sent to may read it"
        status, _ = await svc.get(f"/v1/groups/{harim_group}/updates/1", key="reader")
        assert status == 403
