"""A day of cadence in seconds: the clock is injected and the test drives the ticks.

The real service on a real port, a real SQLite file, the FCM channel against the FCM
emulator; only time is in the test's hands. Rules: tests/testdata/rules-e2e (group_wait
1s, group_interval 3s, repeat_interval 1h, close_after 3h; Harim Center escalates to Idleb
Center after 30m).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.testing.clock import ManualClock
from dispatcher.testing.fcm_emulator import FcmEmulator, ReceivedMessage
from tests.support.harness import Keys, Running, fcm_push, running, settings_for

HARIM = {"lat": 36.12, "lon": 36.52}  # in SY0703 Harim, in SY07 Idleb
MORNING = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)


def report(rid: str, at: datetime, killed: int, lat: float = HARIM["lat"]) -> dict[str, Any]:
    return {
        "id": rid, "source": "observatory", "kind": "airstrike", "occurred_at": at.isoformat(),
        "location": {"lat": lat, "lon": HARIM["lon"]}, "casualties": {"killed": killed},
    }  # fmt: skip


class Ticker:
    """Moves the injected clock and ticks by hand; tells which pushes each tick sent."""

    def __init__(self, clock: ManualClock, emu: FcmEmulator) -> None:
        self.clock, self.emu, self.seen = clock, emu, 0

    async def at(self, svc: Running, when: datetime) -> list[ReceivedMessage]:
        """Move the clock to `when`, tick once, and return the pushes that tick sent."""
        self.clock.set(when)
        await svc.service.pipeline.tick()
        new, self.seen = self.emu.received[self.seen :], len(self.emu.received)
        return new


async def phones(svc: Running, emu: FcmEmulator) -> tuple[str, str]:
    """Android phones for Harim's leader and Idleb's deputy; their tokens."""
    harim, idleb = emu.issue_token(), emu.issue_token()
    for leader, token in (("harim-lead-1", harim), ("idleb-lead-2", idleb)):
        status, _ = await svc.post("/v1/devices", {"token": token, "platform": "android",
                                   "locale": "en"}, key=f"phone-{leader}")  # fmt: skip
        assert status == 201
    return harim, idleb


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("observatory", "reports:write")
    k.add("reader", "read")
    for leader in ("harim-lead-1", "idleb-lead-2", "idleb-lead-1"):
        k.add(f"phone-{leader}", "devices:write", leader=leader)
    return k


async def test_a_day_of_updates_reminders_acknowledgement_and_closing(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    emu = fcm_emulator
    clock = ManualClock(MORNING)
    settings = settings_for(
        tmp_path,
        keys,
        push=fcm_push(emu, fcm_credentials),
        scheduler={"tick": "1h"},  # the test ticks by hand
    )
    at = Ticker(clock, emu).at

    def titles(msgs: list[ReceivedMessage]) -> dict[str, str]:
        by_token = {harim: "harim", idleb: "idleb"}
        return {by_token[m.token]: m.title for m in msgs}

    async with running(settings, keys, clock=clock) as svc:
        harim, idleb = await phones(svc, emu)

        status, body = await svc.post("/v1/reports", report("r1", MORNING, 2), key="observatory")
        assert status == 202
        harim_group, idleb_group = body["groups"]
        assert await at(svc, MORNING) == [], "group_wait has not passed"
        first = await at(svc, MORNING + S)
        assert titles(first) == {"harim": "Harim · new incidents: 1",
                                 "idleb": "Idleb · new incidents: 1"}  # fmt: skip
        assert {m.data["kind"] for m in first} == {"update"}
        assert first[0].body.splitlines()[-1].endswith("today: 1")

        status, _ = await svc.post(
            "/v1/reports", report("r2", MORNING + 5 * S, 3, lat=36.2), key="observatory"
        )
        assert status == 202
        second = await at(svc, MORNING + 5 * S)
        assert titles(second)["harim"] == "Harim · new incidents: 1"
        assert second[0].body.splitlines()[0] == "killed: 5 · injured: 0 · trapped: 0"

        # Half an hour and nobody in Harim has acknowledged: Idleb Center is told, once.
        assert await at(svc, MORNING + 29 * M) == []
        (escalated,) = await at(svc, MORNING + 30 * M)
        assert escalated.token == idleb
        assert escalated.title == "Harim · not acknowledged by Harim Center after 30m"
        assert escalated.data["kind"] == "escalated"
        assert escalated.data["group_id"] == harim_group
        assert await at(svc, MORNING + 31 * M) == []

        # Nothing changes for an hour: nothing is sent, then each group reminds.
        assert await at(svc, MORNING + H) == []
        reminders = await at(svc, MORNING + H + 5 * S)
        assert titles(reminders) == {"harim": "Harim · still active, no change",
                                     "idleb": "Idleb · still active, no change"}  # fmt: skip
        assert {m.data["kind"] for m in reminders} == {"reminder"}
        assert reminders[0].body.splitlines()[0] == "killed: 5 · injured: 0 · trapped: 0"

        # Harim's leader acknowledges: his team is told at once, and his group stops
        # reminding. Idleb's does not.
        clock.set(MORNING + H + 10 * M)
        status, acked = await svc.post(
            f"/v1/groups/{harim_group}/ack", {"responding": True, "note": "two teams out"},
            key="phone-harim-lead-1",
        )  # fmt: skip
        assert status == 201, acked
        assert acked["acknowledged"][0]["name"] == "Omar"
        status, _ = await svc.post(f"/v1/groups/{idleb_group}/ack", {}, key="phone-harim-lead-1")
        assert status == 403, "a leader acknowledges only groups they receive"
        told = await at(svc, MORNING + H + 10 * M)
        assert titles(told) == {"harim": "Harim · acknowledged: Omar (responding)"}

    # A restart: the timers are in the database, so the day goes on where it was.
    async with running(settings, keys, clock=clock) as svc:
        assert await at(svc, MORNING + 2 * H) == []
        again = await at(svc, MORNING + 2 * H + 5 * S)
        assert set(titles(again)) == {"idleb"}, "Idleb reminds again; Harim acknowledged"
        closing = await at(svc, MORNING + 3 * H + 5 * S)
        assert titles(closing) == {"harim": "Harim · closed: quiet for 3h00",
                                   "idleb": "Idleb · closed: quiet for 3h00"}  # fmt: skip
        assert {m.data["kind"] for m in closing} == {"closed"}
        assert closing[0].body.splitlines()[0] == "killed: 5 · injured: 0 · trapped: 0"
        assert await at(svc, MORNING + 6 * H) == [], "a closed group says nothing more"
        status, closed = await svc.get(f"/v1/groups/{harim_group}", key="reader")
        assert closed["state"] == "closed"

        # The afternoon's first strike opens new groups, counted from zero.
        afternoon = MORNING + 6 * H
        status, body = await svc.post("/v1/reports", report("r3", afternoon, 1), key="observatory")
        assert status == 202
        assert harim_group not in body["groups"]
        assert idleb_group not in body["groups"]
        fresh = await at(svc, afternoon + S)
        assert titles(fresh)["harim"] == "Harim · new incidents: 1"
        assert {m.data["seq"] for m in fresh} == {"1"}
        assert fresh[0].body.splitlines()[0] == "killed: 1 · injured: 0 · trapped: 0"
        assert fresh[0].body.splitlines()[-1] == ("incidents in this alert: 1 · today: 3"), (
            "the morning's two strikes and this one, in Damascus' day"
        )


async def test_a_silence_holds_a_team_s_alerts_until_it_ends(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    emu = fcm_emulator
    clock = ManualClock(MORNING)
    keys.add("desk", "admin")
    settings = settings_for(
        tmp_path,
        keys,
        push=fcm_push(emu, fcm_credentials),
        scheduler={"tick": "1h"},
    )
    at = Ticker(clock, emu).at

    async with running(settings, keys, clock=clock) as svc:
        harim, idleb = await phones(svc, emu)

        # Checked against the rules, all errors at once; only an admin key may silence.
        bad = {"matchers": {"regions": ["Atlantis"], "receivers": ["harim-centre"]},
               "duration": "1h", "author": "desk", "reason": "test"}  # fmt: skip
        status, problem = await svc.post("/v1/silences", bad, key="desk")
        assert status == 422
        assert [e["field"] for e in problem["errors"]] == [
            "matchers.regions[0]", "matchers.receivers[0]"
        ]  # fmt: skip
        status, problem = await svc.post("/v1/silences", {**bad, "matchers": {}}, key="desk")
        assert (status, problem["errors"][0]["field"]) == (422, "matchers")
        good = {"matchers": {"receivers": ["harim-center"], "regions": ["Harim"]},
                "starts_at": (MORNING + 2 * S).isoformat(), "duration": "1h",
                "author": "Central desk", "reason": "Harim centre relocating"}  # fmt: skip
        status, _ = await svc.post("/v1/silences", good, key="reader")
        assert status == 403
        status, silence = await svc.post("/v1/silences", good, key="desk")
        assert status == 201, silence
        assert (silence["state"], silence["matchers"]["regions"]) == ("pending", ["SY0703"])

        status, body = await svc.post("/v1/reports", report("s1", MORNING, 2), key="observatory")
        harim_group = body["groups"][0]
        first = await at(svc, MORNING + S)
        assert {m.token for m in first} == {harim, idleb}, "the silence has not started"
        status, _ = await svc.post(
            "/v1/reports", report("s2", MORNING + 5 * S, 3, lat=36.2), key="observatory"
        )
        held = await at(svc, MORNING + 5 * S)
        assert [m.token for m in held] == [idleb], "Harim's update is held; Idleb's is not"
        assert await at(svc, MORNING + 30 * M) == [], "its escalation is held too"
        status, listed = await svc.get("/v1/silences", key="reader")
        assert [s["state"] for s in listed["silences"]] == ["active"]

        # Expired early by the desk: the held update goes out at once.
        clock.set(MORNING + 40 * M)
        status, expired = await svc.delete(f"/v1/silences/{silence['id']}", key="desk")
        assert (status, expired["state"]) == (200, "expired")
        (told,) = await at(svc, MORNING + 40 * M)
        assert told.token == harim
        assert told.title == "Harim · new incidents: 1"
        assert told.body.splitlines()[0] == "killed: 5 · injured: 0 · trapped: 0"
        (escalated,) = await at(svc, MORNING + 40 * M + S)
        assert escalated.data == {**escalated.data, "kind": "escalated", "group_id": harim_group}
        status, acked = await svc.post(
            f"/v1/groups/{harim_group}/ack", {"responding": True}, key="phone-idleb-lead-2"
        )
        assert status == 201, "the team it escalated to may answer for it"
        assert acked["acknowledged"][0]["name"] == "Sara"


async def test_a_mass_casualty_alert_quiets_the_digest_it_would_drown(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    emu = fcm_emulator
    clock = ManualClock(MORNING)
    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).parents[1] / "testdata" / "rules-e2e", rules)
    with (rules / "routes.yaml").open("a") as f:
        f.write(
            "inhibit:\n"
            "  - name: mass-casualty-quiets-idleb\n"
            "    source: {routes: [mass-casualty]}\n"
            "    target: {routes: [idleb]}\n"
            "    for: 20m\n"
        )
    settings = settings_for(
        tmp_path,
        keys,
        push=fcm_push(emu, fcm_credentials),
        scheduler={"tick": "1h"},
        rules={"path": str(rules)},
    )
    at = Ticker(clock, emu).at

    async with running(settings, keys, clock=clock) as svc:
        harim, idleb = await phones(svc, emu)
        status, body = await svc.post("/v1/reports", report("m1", MORNING, 12), key="observatory")
        assert status == 202
        assert body["routes"] == ["mass-casualty", "harim", "idleb"]
        mass, _, idleb_digest = body["groups"]
        await svc.service.pipeline.drain()
        (urgent,) = await at(svc, MORNING)
        assert (urgent.token, urgent.data["group_id"]) == (idleb, mass)

        first = await at(svc, MORNING + S)
        assert [m.token for m in first] == [harim], "Idleb's digest is held: it would repeat"
        assert await at(svc, MORNING + 19 * M) == []
        (digest,) = await at(svc, MORNING + 20 * M)
        assert (digest.token, digest.data["group_id"]) == (idleb, idleb_digest)
        assert digest.title == "Idleb · new incidents: 1"


async def test_one_tick_sends_a_fan_out_larger_than_a_claim(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    emu = fcm_emulator
    clock = ManualClock(MORNING)
    settings = settings_for(
        tmp_path, keys, push=fcm_push(emu, fcm_credentials), scheduler={"tick": "1h"}
    )
    async with running(settings, keys, clock=clock) as svc:
        svc.service.pipeline.delivery.batch = 3  # pushes claimed at a time
        tokens = {emu.issue_token() for _ in range(7)}
        for token in tokens:
            status, _ = await svc.post("/v1/devices", {"token": token, "platform": "android",
                                       "locale": "en"}, key="phone-harim-lead-1")  # fmt: skip
            assert status == 201
        status, _ = await svc.post("/v1/reports", report("r1", MORNING, 2), key="observatory")
        assert status == 202
        clock.set(MORNING + S)
        await svc.service.pipeline.tick()
        harim = {m.token for m in emu.received if m.title.startswith("Harim")}
        assert harim == tokens, "every phone gets the update in the tick it fell due"
