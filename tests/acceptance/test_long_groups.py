"""A group open for hours under a steady stream: its tally stays bounded, and what the
leader reads stays exact, also when an hours-old report is corrected.

The real service on a real port, on SQLite and on PostgreSQL, the FCM channel against the
FCM emulator; the clock is the test's. Rules: tests/testdata/rules-e2e (its groups close
after three hours without a report: a report every twenty minutes keeps Harim's open).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.testing.clock import ManualClock
from dispatcher.testing.fcm_emulator import FcmEmulator, ReceivedMessage
from tests.support.harness import TESTDATA, Keys, Running, fcm_push, running, settings_for

HARIM = (36.12, 36.52)  # in SY0703 Harim
START = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
M = timedelta(minutes=1)


@dataclass
class Stream:
    svc: Running
    clock: ManualClock
    emu: FcmEmulator
    phone: str  # Harim's leader
    seen: int = 0

    async def post(self, rid: str, source: str, killed: int, **more: Any) -> dict[str, Any]:
        body = {"id": rid, "source": source, "kind": "airstrike",
                "occurred_at": (self.clock.now - M).isoformat(),
                "location": {"lat": HARIM[0], "lon": HARIM[1]},
                "casualties": {"killed": killed}, **more}  # fmt: skip
        status, answer = await self.svc.post("/v1/reports", body, key="reporter")
        assert status == 202, answer
        return dict(answer)

    async def push(self) -> ReceivedMessage:
        """Tick five seconds on; the last push Harim's leader received."""
        self.clock.advance(timedelta(seconds=5))
        await self.svc.service.pipeline.tick()
        new, self.seen = self.emu.received[self.seen :], len(self.emu.received)
        mine = [m for m in new if m.token == self.phone]
        assert mine, "the leader heard of the change"
        return mine[-1]


@pytest.fixture
async def stream(
    tmp_path: Path, db_url: str, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> AsyncIterator[Stream]:
    keys = Keys()
    keys.add("reporter", "reports:write")
    keys.add("phone", "devices:write", leader="harim-lead-1")
    clock = ManualClock(START)
    settings = settings_for(
        tmp_path,
        keys,
        db_url=db_url,
        rules={"path": str(TESTDATA / "rules-e2e")},
        push=fcm_push(fcm_emulator, fcm_credentials),
        scheduler={"tick": "1h"},  # the test ticks by hand
    )
    async with running(settings, keys, clock=clock) as svc:
        token = fcm_emulator.issue_token()
        status, _ = await svc.post("/v1/devices", {"token": token, "platform": "android",
                                   "locale": "en"}, key="phone")  # fmt: skip
        assert status == 201
        yield Stream(svc, clock, fcm_emulator, token)


def killed(m: ReceivedMessage) -> str:
    return m.body.splitlines()[0].split(" · ")[0]


async def test_a_group_open_for_hours_keeps_a_bounded_tally_and_exact_counts(
    stream: Stream,
) -> None:
    """Every twenty minutes for six hours a strike in Harim, each its own incident (two
    sources; the second joins the first's incident). The tally keeps the reports of the last
    half hour (twice the merge window) only, and each update's total is the sum of them
    all. A correction of the very first report, hours later, and a late report joining that
    first incident change the total as they should."""
    total, tallies = 0, stream.svc.service.pipeline.tallies
    for n in range(18):
        stream.clock.advance(20 * M)
        await stream.post(f"obs-{n}", "observatory", killed=n % 4 + 1)
        joined = await stream.post(f"w-{n}", "watcher", killed=n % 4 + 2)
        assert joined["merged"] is True
        total += n % 4 + 2  # the larger of the two
        assert killed(await stream.push()) == f"killed: {total}"
        # Harim's group and Idleb's each hold the last half hour's two incidents, not all.
        assert tallies.held <= 8

    # Six hours on, the first incident's watcher corrects 2 killed to 12 ...
    await stream.post("w-0", "watcher", killed=12, revision=2)
    total += 12 - 2
    assert killed(await stream.push()) == f"killed: {total}"
    # Counted whole again (all 73 reports), then let go of again but the last half hour's
    # and the corrected incident's (in Harim's, Idleb's and the mass-casualty group).
    assert tallies.held <= 8 + 2 + 2 + 1

    # ... and a third source, late, reports the first strike with 15 killed.
    late = {"occurred_at": (START + 19 * M).isoformat()}
    body = await stream.post("late-0", "medic", killed=15, **late)
    assert body["merged"] is True
    total += 15 - 12
    assert killed(await stream.push()) == f"killed: {total}"
