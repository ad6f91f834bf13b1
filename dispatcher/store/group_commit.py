"""Group commit of report writes on PostgreSQL, where the service writes through the async engine.

On SQLite the writer process commits what arrives together (store/writer.py). On PostgreSQL
each request was its own transaction: about ten statements for one report, each a round
trip through SQLAlchemy and asyncpg, so a single report cost milliseconds of the service's
CPU (docs/performance.md).
Here the report writes that arrive while one transaction commits wait and then share the
next: their statements are one per table for all of them (`report_writer.ReportWriter.save`). If
a shared transaction fails, each write is committed alone, so that a bad one fails by
itself (`commit_policy`, the writer process's policy too). Several instances may still
write at once; that is PostgreSQL's to serialise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.incidents import MergeRule
from dispatcher.store import dbapi
from dispatcher.store.commit_policy import Done, Outcome, together_or_alone
from dispatcher.store.report_writer import ReportWriter
from dispatcher.store.writer_wire import ReportWrite, SaveResult

# A shared transaction takes waiting requests until it holds this many reports (a request
# of more goes alone): other instances wait on the groups it writes until it commits.
MOST_REPORTS_PER_TRANSACTION = 5000


class ReportCommits:
    """Report writes in shared transactions, one transaction at a time."""

    def __init__(self, engine: AsyncEngine, merge: MergeRule) -> None:
        self.engine = engine
        self.merge = merge
        self._waiting: list[tuple[ReportWrite, asyncio.Future[list[SaveResult]]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def save(self, request: ReportWrite) -> list[SaveResult]:
        """The request's results, once the transaction that holds it has committed."""
        future: asyncio.Future[list[SaveResult]] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        # A caller that goes away (its client hung up) cancels only its wait: the write
        # was handed over and is committed all the same.
        return await future

    async def close(self) -> None:
        """Wait for what was handed over to be committed."""
        if self._draining is not None:
            await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        batch: list[tuple[ReportWrite, asyncio.Future[list[SaveResult]]]] = []
        try:
            while self._waiting:
                taken, reports = 0, 0
                for request, _ in self._waiting:
                    if taken and reports + len(request.items) > MOST_REPORTS_PER_TRANSACTION:
                        break
                    taken, reports = taken + 1, reports + len(request.items)
                batch = self._waiting[:taken]
                del self._waiting[:taken]
                await self._commit_batch(batch)
        except BaseException as exc:  # cancelled at shutdown: nobody is left waiting
            for _, future in [*batch, *self._waiting]:
                _settle(future, exc)
            self._waiting.clear()
            raise
        finally:
            self._draining = None

    async def _commit_batch(
        self, batch: Sequence[tuple[ReportWrite, asyncio.Future[list[SaveResult]]]]
    ) -> None:
        requests = [request for request, _ in batch]

        def commit(conn: Connection) -> list[Outcome[list[SaveResult]]]:
            def one_transaction(jobs: Sequence[ReportWrite]) -> list[list[SaveResult]]:
                with conn.begin():
                    return ReportWriter(dbapi.on(conn), self.merge).save(jobs)

            # Together, else each alone (commit_policy): only a bad one fails.
            return together_or_alone(requests, one_transaction)

        try:
            async with self.engine.connect() as conn:
                outcomes = await conn.run_sync(commit)
        except Exception as exc:  # no connection: every one of them failed
            for _, future in batch:
                _settle(future, exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome.value if isinstance(outcome, Done) else outcome.error)


def _settle(
    future: asyncio.Future[list[SaveResult]], outcome: list[SaveResult] | BaseException
) -> None:
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
