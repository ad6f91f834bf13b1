"""The cadence driver: the only module that imports APScheduler.

One interval job runs the pipeline's tick (flush due groups: updates, reminders, escalations,
closings; deliver and retry the outbox); others watch the rules and apply retention. The
timers themselves live in the database, so the jobs only ask "what is due now?".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger("dispatcher.scheduler")


class Scheduler:
    def __init__(
        self,
        tick: Callable[[], Awaitable[None]],
        every: timedelta,
        *,
        watch: Callable[[], Awaitable[object]] | None = None,
        retention: tuple[Callable[[], Awaitable[object]], timedelta] | None = None,
    ) -> None:
        self._tick = tick
        self._every = every
        self._watch = watch
        self._retention = retention
        self._scheduler: AsyncIOScheduler | None = None
        self._running = asyncio.Lock()

    async def _run_tick(self) -> None:
        async with self._running:
            try:
                await self._tick()
            except Exception:
                # The next tick tries again; a crash here must not kill the job.
                log.exception("scheduler tick failed")

    def start(self) -> None:
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone="UTC")
        scheduler.add_job(
            self._run_tick,
            "interval",
            seconds=self._every.total_seconds(),
            id="tick",
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
