"""A big group's first digest is counted without stalling intake: the event loop keeps
taking turns while tens of thousands of reports are counted, and the count is the same."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from dispatcher.group import GroupTally
from dispatcher.model import Report
from dispatcher.pipeline import Tallies
from tests.unit.test_group import report

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def rows(n: int) -> list[tuple[int, Report]]:
    # Three reports an incident, of two sources, one of them revised.
    out = []
    for i in range(n):
        r = report(f"r{i // 3}-{i % 3}", killed=i % 7, incident=f"inc-{i // 3}")
        out.append((i + 1, r))
    return out


async def count_with_ticker(
    joined: list[tuple[int, Report]], tallies: Tallies | None = None
) -> tuple[GroupTally, int]:
    tallies = tallies or Tallies()
    turns = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = turns
    tally = await tallies.count("g", joined, whole=True, now=NOW)
    during = turns - before
    done.set()
    await task
    assert tally is not None, "a whole count needs nothing let go of"
    return tally, during


async def test_a_big_group_is_counted_while_the_loop_keeps_turning() -> None:
    joined = rows(30_000)
    tally, turns = await count_with_ticker(joined)
    assert turns >= 3, "the event loop ran while the group was counted"
    inline = GroupTally()
    inline.add(joined)
    at = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
    assert tally.summary(previous=None, previous_at=at) == inline.summary(
        previous=None, previous_at=at
    )
    assert tally.counted == inline.counted


async def test_a_small_group_is_counted_on_the_loop() -> None:
    _, turns = await count_with_ticker(rows(30_000), Tallies(in_thread_above=10**9))
    assert turns <= 1, "counted in one go: what the thread spares a big group"


async def test_the_least_recently_flushed_groups_are_forgotten_first() -> None:
    tallies = Tallies(most=2)
    for group_id in ("a", "b", "a", "c"):
        await tallies.count(group_id, rows(3), whole=False, now=NOW)
    assert tallies.get("b") is None
    assert tallies.get("a") is not None
    assert tallies.get("c") is not None
