"""The cadence driver: the only module that imports APScheduler.

One interval job runs the pipeline's tick (flush due groups: updates, reminders, escalations,
closings; deliver and retry the outbox); others watch the rules and apply retention. The
timers themselves live in the database, so the jobs only ask "what is due now?".

A tick that takes longer than its interval (the first digests of big groups in a surge)
delays the next one. APScheduler would warn of each skipped run, every second; the
scheduler instead times every tick (`observe`, a Prometheus histogram in the service) and
says at most once a minute how long slow ticks took, as that is how late updates run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dispatcher.store.errors import unavailable

log = logging.getLogger("dispatcher.scheduler")

TICK_JOB = "tick"
SLOW_TICKS_SAID_EVERY = 60.0  # seconds between warnings of slow ticks


class _SkippedTicks(logging.Filter):
    """Drops APScheduler's warning for each run of the tick skipped while one is running:
    slow ticks are reported by `Scheduler` itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        skipped = "maximum number of running instances" in str(record.msg)
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not (skipped and getattr(job, "id", None) == TICK_JOB)


logging.getLogger("apscheduler.scheduler").addFilter(_SkippedTicks())


class Scheduler:
    def __init__(
        self,
        tick: Callable[[], Awaitable[None]],
        every: timedelta,
        *,
        watch: Callable[[], Awaitable[object]] | None = None,
        retention: tuple[Callable[[], Awaitable[object]], timedelta] | None = None,
        observe: Callable[[float], object] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        """`timer` measures ticks and spaces the warnings (seconds; a test passes its own)."""
        self._tick = tick
        self._timer = timer
        self._every = every
        self._observe = observe
        self._slow: list[float] = []  # durations of slow ticks not yet reported
        self._slow_said_at: float | None = None
        self._watch = watch
        self._retention = retention
        self._scheduler: AsyncIOScheduler | None = None
        self._running = asyncio.Lock()
        self._store_down_since: float | None = None  # monotonic time of the first failure

    async def _run_tick(self) -> None:
        async with self._running:
            started = self._timer()
            try:
                await self._tick()
            except Exception as exc:
                # The next tick tries again; a crash here must not kill the job.
                down = unavailable(exc)
                if down is None:
                    log.exception("scheduler tick failed")
                elif self._store_down_since is None:
                    # Said once, not ten times a second for as long as the database is gone.
                    self._store_down_since = started
                    log.error("scheduler: %s (%s); ticks go on and resume when it is back",
                              down.reason, exc)  # fmt: skip
            else:
                if self._store_down_since is not None:
                    log.warning("scheduler: the store is back after %.1f s",
                                started - self._store_down_since)  # fmt: skip
                    self._store_down_since = None
            self._timed(self._timer() - started)

    def _timed(self, seconds: float) -> None:
        if self._observe is not None:
            self._observe(seconds)
        every = self._every.total_seconds()
        if seconds <= every:
            return
        self._slow.append(seconds)
        now = self._timer()
        if self._slow_said_at is not None and now - self._slow_said_at < SLOW_TICKS_SAID_EVERY:
            return
        slow, self._slow, self._slow_said_at = self._slow, [], now
        log.warning(
            "%d scheduler tick(s) took longer than the %g s interval, the longest %.1f s: "
            "updates and pushes went out up to that late",
            len(slow), every, max(slow),
        )  # fmt: skip

    def next_tick_at(self) -> datetime | None:
        """When APScheduler next starts the tick; None when not running. While a tick runs
        long, the runs it skips move this on."""
        job = self._scheduler.get_job(TICK_JOB) if self._scheduler is not None else None
        return None if job is None else job.next_run_time

    def start(self) -> None:
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone="UTC")
        scheduler.add_job(
            self._run_tick,
            "interval",
            seconds=self._every.total_seconds(),
            id=TICK_JOB,
            max_instances=1,  # a slow tick delays the next one instead of overlapping it
            coalesce=True,
            misfire_grace_time=None,
        )
        if self._watch is not None:
            scheduler.add_job(
                self._run_watch,
                "interval",
                seconds=1,
                id="rules-watch",
                max_instances=1,
                coalesce=True,
            )
        if self._retention is not None:
            job, every = self._retention
            scheduler.add_job(
                self._guarded(job, "retention"),
                "interval",
                seconds=every.total_seconds(),
                id="retention",
                max_instances=1,
                coalesce=True,
            )
        scheduler.start()
        self._scheduler = scheduler

    @staticmethod
    def _guarded(job: Callable[[], Awaitable[object]], name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await job()
            except Exception:
                log.exception("the %s job failed; it runs again at its next time", name)

        return run

    async def _run_watch(self) -> None:
        assert self._watch is not None
        try:
            await self._watch()
        except Exception:
            log.exception("watching the rules failed")

    async def stop(self) -> None:
        if self._scheduler is not None:
            # Shutting down cancels running jobs: let a tick in progress finish first.
            async with self._running:
                self._scheduler.shutdown(wait=False)
                self._scheduler = None
