"""A surge on the manual clock: strikes pile up in Idleb, the centre is told once, again at
most once per group_interval while it grows, and once when it subsides; a restart between
loses nothing. The real service on a real port, SQLite and PostgreSQL, the FCM emulator.

Rules: tests/testdata/rules-e2e with an Ariha district and, first in the tree,
`idleb-surge`: >= 8 incidents within 30m in Idleb governorate, told to Idleb Center, again
at most every 10m.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.settings import Settings
from dispatcher.testing.clock import ManualClock
from dispatcher.testing.fcm_emulator import FcmEmulator, ReceivedMessage
from tests.support.harness import TESTDATA, Keys, Running, fcm_push, running, settings_for

MORNING = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)
# Points in Harim (SY0703), Ariha (SY0702, added below) and Idleb governorate outside both.
HARIM, ARIHA, IDLEB = (36.12, 36.52), (35.70, 36.60), (35.90, 36.10)

SURGE_ROUTE = """\
  routes:
    - name: idleb-surge
      surge: {incidents: ">= 8", within: 30m}
      match: {regions: [SY07]}
      receiver: idleb-center
      group_by: ["region:0"]
      group_interval: 10m
"""
ARIHA_REGION = """\
  - id: SY0702
    name: Ariha
    name_ar: أريحا
    parent: SY07
    approximate: true
    polygon: [[36.3, 35.6], [36.9, 35.6], [36.9, 35.9], [36.3, 35.9]]
"""


def strike(rid: str, minute: int, at: tuple[float, float], *, source: str = "observatory",
           north: float = 0.0, **more: Any) -> dict[str, Any]:  # fmt: skip
    """A report of a strike `minute` minutes into the morning; `north` (in degrees) moves it
    away from the others at the same place (1 km is about 0.009)."""
    return {
        "id": rid, "source": source, "kind": "airstrike",
        "occurred_at": (MORNING + minute * M).isoformat(),
        "location": {"lat": at[0] + north, "lon": at[1]}, "casualties": {"killed": 1}, **more,
    }  # fmt: skip


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("observatory", "reports:write")
    k.add("reader", "read")
    for leader in ("idleb-lead-1", "idleb-lead-2"):
        k.add(f"phone-{leader}", "devices:write", leader=leader)
    return k


class Surges:
    """Moves the clock, ticks by hand, and returns the surge pushes the tick sent."""

    def __init__(self, clock: ManualClock, emu: FcmEmulator) -> None:
        self.clock, self.emu, self.seen = clock, emu, 0

    async def at(self, svc: Running, minute: float) -> list[ReceivedMessage]:
        self.clock.set(MORNING + minute * M)
        await svc.service.pipeline.tick()
        new, self.seen = self.emu.received[self.seen :], len(self.emu.received)
        return [m for m in new if m.data["kind"].startswith("surge")]


async def post(svc: Running, *reports: dict[str, Any]) -> list[dict[str, Any]]:
    bodies = []
    for r in reports:
        status, body = await svc.post("/v1/reports", r, key="observatory")
        assert status == 202, body
        bodies.append(body)
    return bodies


def surge_settings(
    tmp_path: Path, keys: Keys, emu: FcmEmulator, credentials: Path, db_url: str | None = None
) -> Settings:
    rules = tmp_path / "rules"
    shutil.copytree(TESTDATA / "rules-e2e", rules)
    routes = (rules / "routes.yaml").read_text()
    (rules / "routes.yaml").write_text(routes.replace("  routes:\n", SURGE_ROUTE, 1))
    with (rules / "regions.yaml").open("a") as f:
        f.write(ARIHA_REGION)
    return settings_for(
        tmp_path,
        keys,
        db_url=db_url,
        push=fcm_push(emu, credentials),
        scheduler={"tick": "1h"},  # the test ticks by hand
        rules={"path": str(rules)},
    )


async def phones(svc: Running, emu: FcmEmulator) -> tuple[str, str]:
    """Phones for Idleb Center's two leaders: Sara reads English, Abu Khaled Arabic."""
    sara, khaled = emu.issue_token(), emu.issue_token()
    for leader, token, locale in (("idleb-lead-2", sara, "en"), ("idleb-lead-1", khaled, "ar")):
        status, _ = await svc.post("/v1/devices", {"token": token, "platform": "android",
                                   "locale": locale}, key=f"phone-{leader}")  # fmt: skip
        assert status == 201
    return sara, khaled


async def test_a_surge_opens_once_repeats_at_most_every_interval_and_subsides(
    tmp_path: Path, keys: Keys, db_url: str, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    emu = fcm_emulator
    clock = ManualClock(MORNING)
    settings = surge_settings(tmp_path, keys, emu, fcm_credentials, db_url)
    surges = Surges(clock, emu)
    at = surges.at

    async with running(settings, keys, clock=clock) as svc:
        sara, khaled = await phones(svc, emu)

        # Seven strikes in twelve minutes, one of them seen by two observers: below the
        # threshold, nothing is said (were the second sighting counted, 08:12 would be 8).
        morning = [
            strike("h1", 0, HARIM),
            strike("cd-1", 1, HARIM, source="civil-defence"),  # the same strike as h1
            strike("a1", 2, ARIHA),
            strike("i1", 4, IDLEB),
            strike("h2", 6, HARIM, north=0.05),
            strike("a2", 8, ARIHA, north=0.05),
            strike("h3", 10, HARIM, north=0.1),
            strike("i2", 12, IDLEB, north=0.05),
        ]
        groups = set()
        for minute, r in zip((0, 1, 2, 4, 6, 8, 10, 12), morning, strict=True):
            clock.set(MORNING + minute * M)
            (body,) = await post(svc, r)
            assert (
                body["routes"] == ["harim", "idleb"]
                if r["id"].startswith(("h", "cd"))
                else ["idleb"]
            )
            (surge,) = body["surges"]
            assert surge["route"] == "idleb-surge"
            groups.add(surge["group"])
            assert await at(svc, minute) == []
        (group,) = groups

        # The eighth: one push to each leader of Idleb Center, at once, with the places.
        clock.set(MORNING + 14 * M)
        (body,) = await post(svc, strike("h4", 14, HARIM, north=0.15))
        assert body["surges"] == [{"route": "idleb-surge", "group": group}]
        opened = await at(svc, 14)
        assert sorted(m.token for m in opened) == sorted([sara, khaled])
        en = next(m for m in opened if m.token == sara)
        ar = next(m for m in opened if m.token == khaled)
        assert en.title == "Idleb · surge: 8 incidents in 30m"
        assert en.body == "Surge: 8 incidents in Idleb in the last 30m — Harim 4, Idleb 2, Ariha 2"
        assert en.data == {"group_id": group, "seq": "1", "kind": "surge", "count": "8"}
        assert ar.title == "\u202bإدلب · تصاعد الحوادث: 8 خلال 30m\u202c"
        assert "حارم 4، إدلب 2، أريحا 2" in ar.body
        assert await at(svc, 14) == [], "told once"
        status, update = await svc.get(f"/v1/groups/{group}/updates/1", key="phone-idleb-lead-2")
        assert status == 200, update
        assert (update["kind"], update["title"]) == ("surge", en.title)
        assert update["surge"]["count"] == 8
        assert update["surge"]["places"] == [["SY0703", 4], ["SY07", 2], ["SY0702", 2]]

        # Two more within minutes: told again only when group_interval has passed.
        clock.set(MORNING + 16 * M)
        await post(svc, strike("a3", 15, ARIHA, north=0.1), strike("i3", 16, IDLEB, north=0.1))
        assert await at(svc, 16) == []
        assert await at(svc, 20) == []
        again = await at(svc, 24)
        assert {m.title for m in again} == {
            "Idleb · surge continues: 10 incidents in 30m",
            "\u202bإدلب · التصاعد مستمر: 10 خلال 30m\u202c",
        }
        assert next(m for m in again if m.token == sara).body == (
            "Surge continues: 10 incidents in Idleb in the last 30m (was 8) — "
            "Harim 4, Idleb 3, Ariha 3"
        )
        assert await at(svc, 25) == []

        # Ariha's third strike is retracted: it stops counting (9, not told: nothing grew).
        clock.set(MORNING + 26 * M)
        await post(svc, strike("a3", 15, ARIHA, north=0.1, status="retracted", revision=2))
        assert await at(svc, 26) == []

    # A restart: the surge's state is stored. It is not opened again, and it subsides.
    async with running(settings, keys, clock=clock) as svc:
        assert await at(svc, 27) == []
        assert await at(svc, 31) == [], "08:00 left the window: 8, still a surge"
        subsided = await at(svc, 32)
        en = next(m for m in subsided if m.token == sara)
        assert len(subsided) == 2
        assert (en.title, en.body) == (
            "Idleb · surge subsided",
            "Subsided: 7 incidents in Idleb in the last 30m (a surge is 8 or more)",
        )
        assert en.data == {"group_id": group, "seq": "3", "kind": "surge-subsided", "count": "7"}
        assert await at(svc, 40) == []
        status, open_group = await svc.get(f"/v1/groups/{group}", key="reader")
        assert (status, open_group["state"]) == (200, "open"), "counting until the window empties"
        # i3 (08:16) leaves the window at 08:46: the group closes, and says nothing.
        assert await at(svc, 46) == []
        status, closed = await svc.get(f"/v1/groups/{group}", key="reader")
        assert closed["state"] == "closed"
        assert await at(svc, 120) == []
        pushes = [m for m in emu.received if m.data["kind"].startswith("surge")]
        assert [m.data["kind"] for m in pushes if m.token == sara] == [
            "surge", "surge-repeat", "surge-subsided",
        ]  # fmt: skip

        # A later rise opens a new surge alert, in a new group, counted from zero.
        for n in range(8):
            clock.set(MORNING + (180 + n) * M)
            (body,) = await post(svc, strike(f"n{n}", 180 + n, HARIM, north=0.01 * n))
            assert body["surges"][0]["group"] != group
            said = await at(svc, 180 + n)
            assert said == [] if n < 7 else len(said) == 2
        (fresh,) = [m for m in said if m.token == sara]
        assert fresh.title == "Idleb · surge: 8 incidents in 30m"
        assert fresh.body.endswith("— Harim 8")


async def test_a_silence_holds_a_surge_until_it_ends_and_then_tells_what_still_holds(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    emu = fcm_emulator
    keys.add("desk", "admin")
    clock = ManualClock(MORNING)
    at = Surges(clock, emu).at
    async with running(surge_settings(tmp_path, keys, emu, fcm_credentials), keys,
                       clock=clock) as svc:  # fmt: skip
        sara, _ = await phones(svc, emu)
        silence = {"matchers": {"receivers": ["idleb-center"], "routes": ["idleb-surge"]},
                   "starts_at": MORNING.isoformat(), "duration": "20m", "author": "desk",
                   "reason": "drill"}  # fmt: skip
        status, body = await svc.post("/v1/silences", silence, key="desk")
        assert status == 201, body
        for n in range(8):
            clock.set(MORNING + n * M)
            await post(svc, strike(f"s{n}", n, HARIM, north=0.01 * n))
            assert await at(svc, n) == [], "held by the silence"
        assert await at(svc, 19) == []
        told = await at(svc, 20)
        assert [m.title for m in told if m.token == sara] == ["Idleb · surge: 8 incidents in 30m"]
        # Silenced again while it subsides: the leaders, told it opened, hear it ended when
        # the silence ends, with the count then.
        silence["starts_at"] = (MORNING + 21 * M).isoformat()
        silence["duration"] = "1h"
        status, _ = await svc.post("/v1/silences", silence, key="desk")
        assert status == 201
        assert await at(svc, 30) == [], "s0 left the window: subsided, but silenced"
        assert await at(svc, 80) == []
        (ended,) = [m for m in await at(svc, 81) if m.token == sara]
        assert ended.body == "Subsided: 0 incidents in Idleb in the last 30m (a surge is 8 or more)"
        assert await at(svc, 82) == [], "and the group closed"

        # A surge that rises and falls within a silence is never told.
        silence["starts_at"] = (MORNING + 90 * M).isoformat()
        status, _ = await svc.post("/v1/silences", silence, key="desk")
        assert status == 201
        for n in range(8):
            clock.set(MORNING + (90 + n) * M)
            await post(svc, strike(f"t{n}", 90 + n, HARIM, north=0.01 * n))
            assert await at(svc, 90 + n) == []
        assert await at(svc, 150) == [], "the silence ended (10:30) with the surge over"
