"""`GET /v1/me/groups`: what a leader's app shows, from the real service over HTTP.

The real service on a free port, on a real SQLite file and a real PostgreSQL, the console
channel; the clock is injected and the test ticks by hand. Rules: tests/testdata/rules-e2e
(Harim Center escalates to Idleb Center after 30 minutes).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.testing.clock import ManualClock
from dispatcher.web.leaders import MAX_INCIDENTS
from tests.support.harness import TESTDATA, Keys, Running, running, settings_for

HARIM = {"lat": 36.12, "lon": 36.52}  # in SY0703 Harim, in SY07 Idleb
MORNING = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
S, M = timedelta(seconds=1), timedelta(minutes=1)


def report(rid: str, source: str, killed: int, injured: int, **more: Any) -> dict[str, Any]:
    return {
        "id": rid, "source": source, "kind": "airstrike", "occurred_at": MORNING.isoformat(),
        "location": HARIM, "casualties": {"killed": killed, "injured": injured}, **more,
    }  # fmt: skip


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("observatory", "reports:write")
    k.add("reader", "read")
    for leader in ("idleb-lead-1", "idleb-lead-2", "harim-lead-1"):
        k.add(f"phone-{leader}", "devices:write", leader=leader)
    return k


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MORNING)


@pytest.fixture
async def svc(
    tmp_path: Path, keys: Keys, clock: ManualClock, db_url: str
) -> AsyncIterator[Running]:
    # On SQLite and PostgreSQL; the test ticks by hand.
    settings = settings_for(tmp_path, keys, db_url=db_url, scheduler={"tick": "1h"})
    async with running(settings, keys, clock=clock) as s:
        yield s


async def tick_at(svc: Running, clock: ManualClock, when: datetime) -> None:
    clock.set(when)
    await svc.service.pipeline.tick()


async def groups_of(svc: Running, leader: str, query: str = "") -> list[dict[str, Any]]:
    status, body = await svc.get(f"/v1/me/groups{query}", key=f"phone-{leader}")
    assert status == 200, body
    groups: list[dict[str, Any]] = body["groups"]
    return groups


async def test_a_leader_sees_their_teams_open_groups_with_exact_counts(
    svc: Running, clock: ManualClock
) -> None:
    status, body = await svc.post("/v1/reports", report("r1", "observatory", 2, 7),
                                  key="observatory")  # fmt: skip
    assert status == 202
    harim_group, idleb_group = body["groups"]

    (waiting,) = await groups_of(svc, "idleb-lead-1")
    assert waiting["id"] == idleb_group
    assert waiting["latest"] is None, "no update has gone out yet"
    assert waiting["incidents"][0]["casualties"]["killed"] == 2

    await tick_at(svc, clock, MORNING + S)
    # A second observer of the same strike: one incident, the larger figures.
    status, _ = await svc.post("/v1/reports", report("x9", "civil-defence", 3, 5,
                               status="confirmed"), key="observatory")  # fmt: skip
    assert status == 202
    await tick_at(svc, clock, MORNING + 5 * S)

    (group,) = await groups_of(svc, "idleb-lead-1")
    assert group["id"] == idleb_group
    assert group["route"] == "idleb"
    assert (group["receiver"], group["receiver_name"]) == ("idleb-center", "Idleb Center")
    assert group["seq"] == 2
    latest = group["latest"]
    assert latest["seq"] == 2
    assert latest["totals"] == {"killed": 3, "injured": 7, "trapped": 0, "rescued": 0}
    # In the leader's language (Abu Khaled reads Arabic), as the push said it.
    assert latest["title"] == "\u202bإدلب · معدّلة: 1 · مؤكدة: 1\u202c"
    assert latest["created_at"] == (MORNING + 5 * S).isoformat()
    (incident,) = group["incidents"]
    assert incident["casualties"] == {"killed": 3, "injured": 7, "trapped": 0, "rescued": 0}
    assert (incident["region"], incident["region_name"]) == ("SY0703", "حارم")
    assert incident["kind"] == "airstrike"
    assert incident["confirmed"] is True
    assert incident["live_reports"] == 2
    assert group["incidents_total"] == 1
    assert (group["acks"], group["acked_by_me"]) == ([], False)

    # Gzipped for a phone on a poor link (the harness's client asks for it and unpacks it).
    async with svc.http.get(
        svc.url + "/v1/me/groups", headers={"Authorization": "Bearer test-key-phone-idleb-lead-1"}
    ) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"

    (english,) = await groups_of(svc, "idleb-lead-1", "?locale=en")
    assert english["latest"]["title"] == "Idleb · revised: 1 · confirmed: 1"
    assert english["incidents"][0]["region_name"] == "Harim"

    # Harim's leader sees Harim's group only: never another team's.
    (harim,) = await groups_of(svc, "harim-lead-1")
    assert (harim["id"], harim["receiver"]) == (harim_group, "harim-center")
    assert harim["latest"]["title"] == "Harim · revised: 1 · confirmed: 1", "Omar reads English"


async def test_acknowledgements_show_to_the_whole_team(svc: Running, clock: ManualClock) -> None:
    _, body = await svc.post("/v1/reports", report("r1", "observatory", 1, 0), key="observatory")
    idleb_group = body["groups"][1]
    await tick_at(svc, clock, MORNING + S)
    status, _ = await svc.post(f"/v1/groups/{idleb_group}/ack",
                               {"responding": True, "note": "two ambulances on the way"},
                               key="phone-idleb-lead-1")  # fmt: skip
    assert status == 201

    (mine,) = await groups_of(svc, "idleb-lead-1")
    assert mine["acked_by_me"] is True
    assert mine["acks"] == [
        {"leader": "idleb-lead-1", "name": "Abu Khaled", "at": (MORNING + S).isoformat(),
         "responding": True, "note": "two ambulances on the way"}
    ]  # fmt: skip
    (deputy,) = await groups_of(svc, "idleb-lead-2")
    assert deputy["acked_by_me"] is False
    assert [a["name"] for a in deputy["acks"]] == ["Abu Khaled"]


async def test_an_escalated_group_reaches_the_team_above_and_closed_ones_leave(
    svc: Running, clock: ManualClock
) -> None:
    _, body = await svc.post("/v1/reports", report("r1", "observatory", 1, 0), key="observatory")
    harim_group, idleb_group = body["groups"]
    await tick_at(svc, clock, MORNING + S)
    assert [g["id"] for g in await groups_of(svc, "idleb-lead-1")] == [idleb_group]

    await tick_at(svc, clock, MORNING + 30 * M)  # nobody in Harim acknowledged
    seen = await groups_of(svc, "idleb-lead-1")
    assert {g["id"] for g in seen} == {idleb_group, harim_group}
    escalated = next(g for g in seen if g["id"] == harim_group)
    assert escalated["escalated"] is True
    assert escalated["latest"]["kind"] == "escalated"

    await tick_at(svc, clock, MORNING + 4 * 60 * M)  # close_after 3h of quiet: both close
    assert await groups_of(svc, "idleb-lead-1") == []


async def test_only_a_leaders_device_key_reads_it(svc: Running) -> None:
    status, body = await svc.get("/v1/me/groups", key="reader")
    assert status == 403
    assert body["detail"] == "the key 'reader' lacks the scope 'devices:write'"
    status, _ = await svc.get("/v1/me/groups")
    assert status == 401
    status, body = await svc.get("/v1/me/groups?locale=fr", key="phone-idleb-lead-1")
    assert status == 400
    assert body["errors"] == [{"field": "locale", "message": "must be one of ar, en"}]


async def test_a_big_group_lists_its_newest_incidents_and_says_how_many(
    svc: Running, clock: ManualClock
) -> None:
    batch = [
        {**report(f"b{n}", "observatory", 1, 0), "incident": f"strike-{n:02d}",
         "occurred_at": (MORNING - (60 - n) * M).isoformat()}
        for n in range(MAX_INCIDENTS + 1)
    ]  # fmt: skip
    status, body = await svc.post("/v1/reports", batch, key="observatory")
    assert (status, body["accepted"]) == (200, MAX_INCIDENTS + 1)
    await tick_at(svc, clock, MORNING + S)

    (group,) = await groups_of(svc, "idleb-lead-1")
    assert group["incidents_total"] == MAX_INCIDENTS + 1
    assert len(group["incidents"]) == MAX_INCIDENTS
    newest, *_, oldest_shown = group["incidents"]
    assert newest["occurred_at"] == (MORNING - 10 * M).isoformat()
    assert oldest_shown["occurred_at"] == (MORNING - 59 * M).isoformat(), "the oldest is left out"
    assert group["latest"]["totals"]["killed"] == MAX_INCIDENTS + 1, "the totals count them all"


async def test_sources_that_disagree_show_as_one_incident_with_their_range(
    tmp_path: Path, keys: Keys, clock: ManualClock
) -> None:
    """Two observers 650 m apart, then our team between them (docs/counting.md): the
    leader's list shows one incident with the team's figure and how far others go."""
    rules = tmp_path / "rules"
    shutil.copytree(TESTDATA / "rules-e2e", rules)
    (rules / "sources.yaml").write_text("sources:\n  own: [team-harim]\n  trusted: [observatory]\n")
    settings = settings_for(tmp_path, keys, rules={"path": str(rules)}, scheduler={"tick": "1h"})

    def at(rid: str, source: str, metres: float, killed: int) -> dict[str, Any]:
        where = {"lat": HARIM["lat"] + metres / 111_195, "lon": HARIM["lon"]}
        return {**report(rid, source, killed, 0), "location": where}

    async with running(settings, keys, clock=clock) as svc:
        for body in (at("o-1", "observatory", 325, 5), at("w-1", "witness", -325, 2)):
            status, _ = await svc.post("/v1/reports", body, key="observatory")
            assert status == 202
        await tick_at(svc, clock, MORNING + S)
        (group,) = await groups_of(svc, "idleb-lead-1")
        assert group["incidents_total"] == 2

        status, team = await svc.post("/v1/reports", at("t-1", "team-harim", 20, 4),
                                      key="observatory")  # fmt: skip
        assert status == 202
        await tick_at(svc, clock, MORNING + 5 * S)
        (group,) = await groups_of(svc, "idleb-lead-1")
        assert group["latest"]["totals"]["killed"] == 4
        assert group["latest"]["ranges"] == {"killed": {"value": 4, "high": 5}}
        (incident,) = group["incidents"]
        assert group["incidents_total"] == 1
        assert incident["id"] == team["report"]["incident"]
        assert incident["casualties"]["killed"] == 4
        assert incident["live_reports"] == 3
        assert incident["ranges"] == {"killed": {"value": 4, "high": 5}}
