"""The cadence driver under a slow tick: the next waits, and operators read one warning a
minute that says how late updates ran, not one per skipped run.

APScheduler runs the tick on its real 1/8 s interval; how long a tick takes is told by a
timer the test moves, so no figure here depends on how busy the machine is."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from dispatcher.scheduler import SLOW_TICKS_SAID_EVERY, Scheduler
from tests.support.waiting import until


class Timer:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_slow_ticks_are_timed_and_told_once_a_minute_not_at_every_skipped_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timer = Timer()
    running = ran = 0
    overlapped = False
    held = asyncio.Event()
    first_running = asyncio.Event()

    async def slow_tick() -> None:
        nonlocal running, ran, overlapped
        running += 1
        ran += 1
        overlapped = overlapped or running > 1
        timer.now += 0.5  # each tick takes half a second, four intervals
        if ran == 1:
            first_running.set()
            await held.wait()
        running -= 1

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "dispatcher.scheduler"]

    timed: list[float] = []
    scheduler = Scheduler(slow_tick, timedelta(seconds=0.125), observe=timed.append, timer=timer)
    with caplog.at_level(logging.INFO):
        scheduler.start()
        try:
            await until(first_running.is_set, what="the first tick")
            due = scheduler.next_tick_at()
            assert due is not None
            # APScheduler comes round twice more while the first tick holds on, and skips.
            await until(
                scheduler.next_tick_at,
                lambda at: at is not None and at >= due + timedelta(seconds=0.25),
                what="two runs skipped while the first tick holds on",
            )
            assert ran == 1, "a slow tick delays the next instead of overlapping it"
            held.set()
            await until(lambda: len(timed), lambda n: n >= 3, what="three slow ticks")
            assert len(said()) == 1, "one warning for the first slow ticks, not one each"
            # A minute on, the next slow tick is told again, with those that came between.
            timer.now += SLOW_TICKS_SAID_EVERY
            await until(lambda: len(said()), lambda n: n == 2, what="the next minute's warning")
        finally:
            await scheduler.stop()
    assert not overlapped
    assert len(timed) == ran, "every tick is timed"
    assert set(timed) == {0.5}, timed
    first, second = said()
    assert first == (
        "1 scheduler tick(s) took longer than the 0.125 s interval, the longest 0.5 s: "
        "updates and pushes went out up to that late"
    )
    assert "the longest 0.5 s" in second
    skipped = [r for r in caplog.records if "running instances" in r.getMessage()]
    assert skipped == [], "APScheduler's warning for each skipped run is left out"
