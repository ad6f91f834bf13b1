"""Counts as the teams keep them: what a leader sees when sources disagree.

The real service on a real port, on SQLite and on PostgreSQL, the FCM channel against the
FCM emulator; the clock is the test's. Rules: tests/testdata/rules-e2e (Harim's leader
reads English, Idleb's first leader Arabic) with a sources.yaml: two of our own teams, an
observatory we trust, and everyone else `other`. Each scenario is one of issue 15's, with
the figures the leader's push and the API show.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.testing.clock import ManualClock
from dispatcher.testing.fcm_emulator import FcmEmulator, ReceivedMessage
from tests.support.harness import TESTDATA, Keys, Running, fcm_push, running, settings_for

HARIM = (36.12, 36.52)  # in SY0703 Harim, in SY07 Idleb
NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
S, M = timedelta(seconds=1), timedelta(minutes=1)
SOURCES = """\
sources:
  own: [team-harim, team-idleb, team-aleppo]
  trusted: [observatory]
"""


def north(metres: float) -> dict[str, float]:
    return {"lat": HARIM[0] + metres / 111_195, "lon": HARIM[1]}


def report(
    rid: str,
    source: str,
    *,
    at: dict[str, float] | None = None,
    minutes: float = 0,
    kind: str = "airstrike",
    **counts: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "source": source,
        "kind": kind,
        "occurred_at": (NOON - 10 * M + minutes * M).isoformat(),
        "location": at or north(0),
        "casualties": {k: v for k, v in counts.items() if k in ("killed", "trapped", "rescued")},
    }
    body.update({k: v for k, v in counts.items() if k in ("site", "incident", "revision")})
    return body


@dataclass
class Desk:
    """The service, its clock and the two leaders' phones."""

    svc: Running
    rules: Path
    clock: ManualClock
    emu: FcmEmulator
    harim: str  # Harim's leader, English
    idleb: str  # Idleb's first leader, Arabic
    seen: int = 0

    async def post(self, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = await self.svc.post("/v1/reports", body, key="reporter")
        assert status == 202, answer
        return dict(answer)

    async def pushes(self, after: timedelta = 5 * S) -> dict[str, ReceivedMessage]:
        """Move the clock on, tick, and return what each phone received."""
        self.clock.advance(after)
        await self.svc.service.pipeline.tick()
        new, self.seen = self.emu.received[self.seen :], len(self.emu.received)
        return {{self.harim: "harim", self.idleb: "idleb"}[m.token]: m for m in new}

    async def incidents(self) -> list[dict[str, Any]]:
        status, body = await self.svc.get("/v1/incidents", key="reader")
        assert status == 200, body
        return list(body["incidents"])


@pytest.fixture
async def desk(
    tmp_path: Path, db_url: str, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> AsyncIterator[Desk]:
    rules = tmp_path / "rules"
    shutil.copytree(TESTDATA / "rules-e2e", rules)
    (rules / "sources.yaml").write_text(SOURCES)
    keys = Keys()
    keys.add("reporter", "reports:write")
    keys.add("reader", "read")
    keys.add("desk", "admin")
    for leader in ("harim-lead-1", "idleb-lead-1"):
        keys.add(f"phone-{leader}", "devices:write", leader=leader)
    clock = ManualClock(NOON)
    settings = settings_for(
        tmp_path,
        keys,
        db_url=db_url,
        rules={"path": str(rules)},
        push=fcm_push(fcm_emulator, fcm_credentials),
        scheduler={"tick": "1h"},  # the test ticks by hand
    )
    async with running(settings, keys, clock=clock) as svc:
        tokens = []
        for leader, locale in (("harim-lead-1", "en"), ("idleb-lead-1", "ar")):
            token = fcm_emulator.issue_token()
            status, _ = await svc.post("/v1/devices", {"token": token, "platform": "android",
                                       "locale": locale}, key=f"phone-{leader}")  # fmt: skip
            assert status == 201
            tokens.append(token)
        yield Desk(svc, rules, clock, fcm_emulator, harim=tokens[0], idleb=tokens[1])


def first_line(m: ReceivedMessage) -> str:
    return m.body.splitlines()[0].strip("\u202b\u202c")


async def test_our_team_count_wins_over_an_early_toll_never_revised(desk: Desk) -> None:
    """1. An observatory's early toll of 9 killed is never revised; the team at the site
    counts 6. The incident says 6 and shows that others report up to 9."""
    await desk.post(report("obs-1", "observatory", killed=9))
    first = await desk.pushes()
    assert first_line(first["harim"]) == "killed: 9 · injured: 0 · trapped: 0"

    answer = await desk.post(report("t-1", "team-harim", at=north(120), minutes=2, killed=6))
    assert answer["merged"] is True
    assert answer["report"]["tier"] == "own"
    second = await desk.pushes()
    assert second["harim"].title == "Harim · revised: 1"
    assert first_line(second["harim"]) == "killed: 6 (others: up to 9) · injured: 0 · trapped: 0"
    assert first_line(second["idleb"]) == "قتلى: 6 (مصادر أخرى: حتى 9) · جرحى: 0 · عالقون: 0"

    (incident,) = await desk.incidents()
    assert incident["casualties"]["killed"] == 6
    assert incident["counts"]["killed"] == {
        "value": 6, "sources": ["team-harim"], "tier": "own", "low": 6, "high": 9,
    }  # fmt: skip
    tiers = {r["source"]: r["tier"] for r in incident["reports"]}
    assert tiers == {"observatory": "trusted", "team-harim": "own"}


async def test_trapped_is_the_latest_state_our_team_reports(desk: Desk) -> None:
    """2. The team reports 4 trapped, later 0 once all are out; an early witness report of
    4 is never revised. The incident says 0 trapped, and rescued keeps rising."""
    await desk.post(report("w-1", "witness", trapped=4))
    answer = await desk.post(report("t-1", "team-harim", minutes=1, trapped=4, rescued=1))
    incident_id = answer["report"]["incident"]
    assert first_line((await desk.pushes())["harim"]) == "killed: 0 · injured: 0 · trapped: 4"

    # Later reports of the team, naming the incident: two still trapped, then none.
    await desk.post(report("t-2", "team-harim", minutes=4, trapped=2, rescued=3,
                           incident=incident_id))  # fmt: skip
    assert first_line((await desk.pushes())["harim"]) == (
        "killed: 0 · injured: 0 · trapped: 2 (others: up to 4)"
    )
    await desk.post(report("t-3", "team-harim", minutes=8, trapped=0, rescued=5,
                           incident=incident_id))  # fmt: skip
    pushed = await desk.pushes()
    assert first_line(pushed["harim"]) == "killed: 0 · injured: 0 · trapped: 0 (others: up to 4)"
    assert first_line(pushed["idleb"]) == "قتلى: 0 · جرحى: 0 · عالقون: 0 (مصادر أخرى: حتى 4)"

    (incident,) = await desk.incidents()
    assert incident["casualties"] == {"killed": 0, "injured": 0, "trapped": 0, "rescued": 5}
    assert incident["counts"]["trapped"] == {
        "value": 0, "sources": ["team-harim"], "tier": "own", "low": 0, "high": 4,
    }  # fmt: skip
    assert incident["counts"]["rescued"]["value"] == 5


async def test_two_buildings_counted_by_two_teams_add_up(desk: Desk) -> None:
    """3. Two of our teams each count the victims at a different building hit by one strike
    and say so: the incident's figure is their sum; two reports of one site never are."""
    await desk.post(report("h-1", "team-harim", killed=5, site="building-north"))
    answer = await desk.post(report("i-1", "team-idleb", at=north(80), killed=3,
                                    site="building-south"))  # fmt: skip
    assert answer["merged"] is True
    assert answer["report"]["site"] == "building-south"
    # A third team at the north building counts 4: the same dead, not more.
    await desk.post(report("a-1", "team-aleppo", at=north(20), killed=4, site="building-north"))
    pushed = await desk.pushes()
    assert pushed["harim"].title == "Harim · new incidents: 1"
    assert first_line(pushed["harim"]) == "killed: 8 · injured: 0 · trapped: 0"

    (incident,) = await desk.incidents()
    assert incident["counts"]["killed"] == {
        "value": 8, "sources": ["team-harim", "team-idleb"], "tier": "own", "low": 3, "high": 5,
    }  # fmt: skip
    assert {r["site"] for r in incident["reports"]} == {"building-north", "building-south"}


async def test_a_missile_and_an_airstrike_250_m_apart_are_one_strike(desk: Desk) -> None:
    """4. One observer calls a strike a missile, another an airstrike, 250 m and 3 minutes
    apart: one incident, of the kind the highest tier gives."""
    await desk.post(report("w-1", "witness", kind="missile", killed=2))
    answer = await desk.post(report("o-1", "observatory", at=north(250), minutes=3,
                                    kind="airstrike", killed=3))  # fmt: skip
    assert answer["merged"] is True
    pushed = await desk.pushes()
    assert pushed["harim"].body.splitlines()[1] == "airstrike: 1"
    assert first_line(pushed["harim"]) == "killed: 3 · injured: 0 · trapped: 0"

    (incident,) = await desk.incidents()
    assert incident["kind"] == "airstrike"
    assert incident["live_reports"] == 2


async def test_observers_gather_round_our_team_at_the_site(desk: Desk) -> None:
    """5. Two observers of one strike state positions 650 m apart; our team's report at the
    site lies between them. With the team's report first, all three are one incident."""
    team = await desk.post(report("t-1", "team-harim", killed=4))
    north_obs = await desk.post(report("o-1", "observatory", at=north(325), minutes=1, killed=5))
    south_obs = await desk.post(report("w-1", "witness", at=north(-325), minutes=2, killed=2))
    incident = team["report"]["incident"]
    assert north_obs["report"]["incident"] == south_obs["report"]["incident"] == incident
    pushed = await desk.pushes()
    assert pushed["harim"].title == "Harim · new incidents: 1"
    assert first_line(pushed["harim"]) == "killed: 4 (others: up to 5) · injured: 0 · trapped: 0"
    (listed,) = await desk.incidents()
    assert listed["live_reports"] == 3


async def test_our_team_between_two_observers_makes_their_incidents_one(desk: Desk) -> None:
    """5, the other order. The observers report first, 650 m apart: two incidents. Our
    team's report between them joins the nearer and gathers the other into it: one
    incident, counted once, in the push and the API."""
    north_obs = await desk.post(report("o-1", "observatory", at=north(325), killed=5))
    south_obs = await desk.post(report("w-1", "witness", at=north(-325), minutes=1, killed=2))
    assert north_obs["report"]["incident"] != south_obs["report"]["incident"]
    first = await desk.pushes()
    assert first["harim"].title == "Harim · new incidents: 2"
    assert first_line(first["harim"]) == "killed: 7 · injured: 0 · trapped: 0"
    assert first["harim"].body.splitlines()[-1] == "incidents in this alert: 2 · today: 2"

    team = await desk.post(report("t-1", "team-harim", at=north(20), minutes=2, killed=4))
    assert team["merged"] is True
    merged = await desk.pushes()
    assert merged["harim"].title == "Harim · revised: 1"
    assert first_line(merged["harim"]) == "killed: 4 (others: up to 5) · injured: 0 · trapped: 0"
    assert merged["harim"].body.splitlines()[-1].startswith("incidents in this alert: 1 · ")
    assert merged["harim"].body.splitlines()[-1].endswith(" · today: 1")
    assert first_line(merged["idleb"]) == "قتلى: 4 (مصادر أخرى: حتى 5) · جرحى: 0 · عالقون: 0"

    (incident,) = await desk.incidents()
    assert incident["id"] == team["report"]["incident"]
    assert incident["live_reports"] == 3
    assert incident["counts"]["killed"] == {
        "value": 4, "sources": ["team-harim"], "tier": "own", "low": 2, "high": 5,
    }  # fmt: skip
    # A later report of the witness's, as a revision, still counts in the one incident.
    await desk.post(report("w-1", "witness", at=north(-325), minutes=1, killed=8, revision=2))
    again = await desk.pushes()
    assert first_line(again["harim"]) == "killed: 4 (others: up to 8) · injured: 0 · trapped: 0"
    assert again["harim"].body.splitlines()[-1].startswith("incidents in this alert: 1 · ")


async def test_two_strikes_700_m_apart_stay_two_without_our_team(desk: Desk) -> None:
    """Without a report of our own teams the 500 m rule stands."""
    await desk.post(report("o-1", "observatory", killed=2))
    answer = await desk.post(report("w-1", "witness", at=north(700), minutes=1, killed=3))
    assert answer["merged"] is False
    pushed = await desk.pushes()
    assert pushed["harim"].title == "Harim · new incidents: 2"
    assert first_line(pushed["harim"]) == "killed: 5 · injured: 0 · trapped: 0"
    assert len(await desk.incidents()) == 2


async def test_a_tier_edit_applies_to_the_reports_received_after_it(desk: Desk) -> None:
    """A report's tier is decided when it is accepted and kept with it: counts can be told
    again from the stored reports, and an audit shows why a figure was chosen."""
    before = await desk.post(report("n-1", "new-team", killed=3))
    assert before["report"]["tier"] == "other"
    (desk.rules / "sources.yaml").write_text(
        SOURCES.replace("team-aleppo]", "team-aleppo, new-team]")
    )
    status, body = await desk.svc.post("/v1/admin/rules/reload", None, key="desk")
    assert status == 200, body
    after = await desk.post(report("n-2", "new-team", at=north(2000), killed=1))
    assert after["report"]["tier"] == "own"
    tiers = {r["id"]: r["tier"] for i in await desk.incidents() for r in i["reports"]}
    assert tiers == {"n-1": "other", "n-2": "own"}
