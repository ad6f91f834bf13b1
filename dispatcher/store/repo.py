"""The store: one object, built by the composition root, that holds every room.

Each room is a module named for what it holds, behind a small protocol (`store/ports.py`):
`reports` (report writes and reads), `groups` (alert groups and their updates), `outbox`
(notifications, claims, outcomes, retention) and `admin` (devices, silences, rule sets,
keys). They share the engine, the SQLite reader and the one write path (`store/submit.py`).
The rows they hand out are plain values (`store/rows.py`); nothing above the store sees
SQLAlchemy. Each public method is one transaction. docs/store.md has the map.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.incidents import MergeRule
from dispatcher.store.admin import AdminRoom
from dispatcher.store.claims import ClaimOwner
from dispatcher.store.desk import DeskRoom
from dispatcher.store.groups import GroupRoom
from dispatcher.store.leaders import LeaderRoom
from dispatcher.store.outbox import OutboxRoom
from dispatcher.store.reports import ReportRoom
from dispatcher.store.rows import (
    Ack,
    DeliveryRow,
    DeviceRow,
    FlushReads,
    GroupRow,
    IncidentRow,
    LastUpdate,
    OutboxItem,
    Outcome,
    PendingPush,
)
from dispatcher.store.sole_sender import SoleSender
from dispatcher.store.submit import Writes
from dispatcher.store.writer import WriterProcess

__all__ = [  # the rows are re-exported: callers import them from here or from rows
    "Ack",
    "DeliveryRow",
    "DeviceRow",
    "FlushReads",
    "GroupRow",
    "IncidentRow",
    "LastUpdate",
    "OutboxItem",
    "Outcome",
    "PendingPush",
    "Store",
]


class Store(ReportRoom, GroupRoom, LeaderRoom, DeskRoom, OutboxRoom, AdminRoom):
    """Every room of the store over one database."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        merge: MergeRule | None = None,
        writer: WriterProcess | None = None,
        reader: Engine | None = None,
        max_waiting_reports: int = 50_000,
    ) -> None:
        self.engine = engine
        self.merge = merge or MergeRule()
        self.reader = reader
        self.writes = Writes(engine, self.merge, writer, max_waiting_reports)
        self.claims = ClaimOwner(engine) if engine.dialect.name == "postgresql" else None
        self.sole = SoleSender.for_url(engine.url.render_as_string(hide_password=False))

    @property
    def writer(self) -> WriterProcess | None:
        """SQLite: the process that makes every write."""
        return self.writes.writer

    async def close(self) -> None:
        if self.claims is not None:
            await self.claims.release()
        await self.writes.close()  # answer what was accepted before closing
        await self.engine.dispose()
        if self.sole is not None:
            self.sole.release()
        if self.reader is not None:
            await asyncio.to_thread(self.reader.dispose)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
