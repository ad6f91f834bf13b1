"""The cadence driver under a slow tick: the next waits, and operators read one warning
that says how late updates ran, not one per skipped run."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from dispatcher.scheduler import Scheduler
from tests.support.waiting import until


async def test_slow_ticks_are_timed_and_told_once_not_at_every_skipped_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = ran = 0
    overlapped = False

    async def slow_tick() -> None:
        nonlocal running, ran, overlapped
        running += 1
        ran += 1
        overlapped = overlapped or running > 1
        await asyncio.sleep(0.3)
        running -= 1

    timed: list[float] = []
    scheduler = Scheduler(slow_tick, timedelta(seconds=0.1), observe=timed.append)
    with caplog.at_level(logging.INFO):
        scheduler.start()
        await until(lambda: len(timed), lambda n: n >= 3, what="three slow ticks")
        await scheduler.stop()
    assert ran >= 2, "ticks ran"
    assert len(timed) == ran, "every tick is timed"
    assert all(0.29 <= t < 1 for t in timed), timed
    assert not overlapped, "a slow tick delays the next instead of overlapping it"
    said = [r.getMessage() for r in caplog.records if r.name == "dispatcher.scheduler"]
    assert len(said) == 1, said
    assert "longer than the 0.1 s interval, the longest 0.3 s" in said[0]
    skipped = [r for r in caplog.records if "running instances" in r.getMessage()]
    assert skipped == [], "APScheduler's warning for each skipped run is left out"
