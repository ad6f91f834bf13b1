"""Who holds a claim on an outbox row, and whether they are still alive (PostgreSQL).

A sender claims the pushes it is about to send (store/outbox.py `_claim`) so that no other
sender sends them too. A claim used to be a lease only: `claimed_until`, two minutes on. If
the instance died while sending, its pushes waited those two minutes, and a push it had
already delivered went out again two minutes later.

On PostgreSQL each instance now holds a session-level advisory lock on a connection of its
own, under an id of its own (`ClaimOwner`), and signs its claims with that id
(`claimed_by`). PostgreSQL frees the lock the moment the instance's connection drops (the
process killed, the machine gone), so the next claim by any other instance sees the owner
gone (`live_owners`) and takes its pushes over at once. The lease stays as the limit for a
claim whose owner is alive but stuck, and as the only rule on SQLite, where one service
with one writer sends everything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("dispatcher.store")

# The advisory lock's first key: ours, among whatever else takes advisory locks on the server
# ("disp" in ASCII). The second key is the instance's id.
LOCK_SPACE = 0x64697370

LIVE_OWNERS = text(
    "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid = :space AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class OwnerLost(RuntimeError):
    """This instance's lock is gone (its connection dropped): claim nothing under it."""


def live_owners(conn: Connection) -> set[int]:
    """The ids whose instances are alive now: they hold their lock."""
    return {int(i) for i in conn.execute(LIVE_OWNERS, {"space": LOCK_SPACE}).scalars()}


class ClaimOwner:
    """This instance's id for its claims, alive as long as its lock's connection is."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.id: int | None = None
        self._conn: AsyncConnection | None = None
        self._taking = asyncio.Lock()  # one lock connection, however many claim at once

    async def acquire(self, *, lost: int | None = None) -> int:
        """A new id on a new connection, the old lock (`lost`) being gone; the current id if
        another caller has already replaced it."""
        async with self._taking:
            if self.id is not None and self.id != lost:
                return self.id
            return await self._take()

    async def current(self) -> int:
        if self.id is not None:
            return self.id
        return await self.acquire()

    async def _take(self) -> int:
        await self._release()
        conn = await self.engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            while True:
                candidate = secrets.randbelow(2**31 - 2) + 1
                taken = await conn.scalar(
                    text("SELECT pg_try_advisory_lock(:space, :id)"),
                    {"space": LOCK_SPACE, "id": candidate},
                )
                if taken:
                    break
            # Operators see which process holds which claims (pg_stat_activity).
            await conn.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": f"dispatcher pid {os.getpid()} claims as {candidate}"},
            )
        except BaseException:
            await _drop(conn)
            raise
        self._conn, self.id = conn, candidate
        log.info("outbox claims of this instance are signed %d", candidate)
        return candidate

    async def release(self) -> None:
        async with self._taking:
            await self._release()

    async def _release(self) -> None:
        conn, self._conn, self.id = self._conn, None, None
        if conn is not None:
            await _drop(conn)


async def _drop(conn: AsyncConnection) -> None:
    """Close the session for good, and its lock with it: back in the pool it would keep
    the lock (a rollback does not free a session-level lock)."""
    try:
        await conn.invalidate()
    finally:
        await conn.close()
