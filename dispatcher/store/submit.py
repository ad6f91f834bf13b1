"""The one write path: every write of the service is submitted here, and every read runs here.

A write is a plain function of a connection (a `functools.partial` of a module-level
function, so that it pickles) submitted with `Writes.call`, or a report write submitted with
`Writes.reports`. On SQLite both go to the writer process (store/writer.py); on PostgreSQL a
function runs in a transaction of the async engine and report writes share transactions
(store/group_commit.py). Either way what arrives together is committed together, or each
alone if that fails (`commit_policy.together_or_alone`, one policy for both). Overload is
refused, not absorbed: past `max_waiting_reports` handed over and not yet committed, a
report write raises `Overloaded` (store/errors.py) before anything of it is written.

`Room` is what each room of the store (`reports`, `groups`, `outbox`, `admin`) is built on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.incidents import MergeRule
from dispatcher.store.claims import ClaimOwner
from dispatcher.store.errors import Overloaded
from dispatcher.store.group_commit import ReportCommits
from dispatcher.store.writer import CALL, REPORTS, WriterProcess
from dispatcher.store.writer_wire import ReportWrite, SaveResult, decode_results, encode_write

T = TypeVar("T")


class Writes:
    """Submits writes: to the SQLite writer process if there is one, else to the engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        merge: MergeRule,
        writer: WriterProcess | None,
        max_waiting_reports: int = 50_000,
    ) -> None:
        self.engine = engine
        self.writer = writer  # SQLite: the process that makes every write (db.create_writer)
        if writer is not None:
            writer.merge = merge  # the merge rule it decides with, before its first write
        self._commits = ReportCommits(engine, merge) if writer is None else None
        # Overload is refused, not absorbed: reports handed over and not yet committed.
        self.max_waiting_reports = max_waiting_reports
        self.waiting_reports = 0

    async def call(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a write transaction and return what it returns, once committed.

        On SQLite in the writer process, which commits the writes that arrive together in
        one transaction; `fn` must pickle (a partial of a module-level function). Elsewhere
        (PostgreSQL) in a transaction of the async engine."""
        if self.writer is None:
            async with self.engine.begin() as conn:
                return await conn.run_sync(fn)
        result: T = await self.writer.call(CALL, fn)
        return result

    async def reports(self, request: ReportWrite) -> list[SaveResult]:
        """Store a request's reports; their results once the transaction has committed."""
        count = len(request.items)
        waiting = self.waiting_reports + count
        if waiting > self.max_waiting_reports and self.waiting_reports:
            # Refused before it is handed over: nothing of it is written (a request larger
            # than the bound alone still goes through, when nothing else waits).
            raise Overloaded(f"{self.waiting_reports} reports already wait for the database")
        self.waiting_reports = waiting
        try:
            if self._commits is not None:
                return await self._commits.save(request)
            assert self.writer is not None
            encoded = await self.writer.call(REPORTS, encode_write(request))
            return decode_results(request, encoded)
        finally:
            self.waiting_reports -= count

    async def close(self) -> None:
        """Answer what was accepted, then stop taking writes."""
        if self.writer is not None:
            await self.writer.close()
        if self._commits is not None:
            await self._commits.close()


class Room:
    """What each room of the store stands on: the engine, the SQLite reader, the write path."""

    engine: AsyncEngine
    reader: Engine | None  # SQLite: a sync engine for a flush's reads (db.create_reader)
    merge: MergeRule
    writes: Writes
    # PostgreSQL: this instance's id on its outbox claims, freed with its connection.
    claims: ClaimOwner | None

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one read transaction: on SQLite in a worker thread on the reader's
        plain connection (one hop, however many statements), elsewhere on the async engine."""
        if self.reader is None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(fn)
        reader = self.reader

        def run() -> T:
            with reader.connect() as conn:
                return fn(conn)

        return await asyncio.to_thread(run)

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """Submit `fn` through the one write path (`Writes.call`)."""
        return await self.writes.call(fn)
