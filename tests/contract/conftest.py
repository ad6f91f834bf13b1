"""The store behind the contract suite: each test runs on the in-memory store, a real
SQLite file and (when DISPATCHER_TEST_POSTGRES_URL is set) a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pytest

from dispatcher.group import GroupTarget, Timing
from dispatcher.model import Report
from dispatcher.store import db
from dispatcher.store.hand_over import HandOver
from dispatcher.store.ports import (
    DeviceStore,
    Health,
    KeyStore,
    OutboxStore,
    PipelineStore,
    RuleSetStore,
    SilenceStore,
)
from dispatcher.store.repo import Store
from dispatcher.store.writer_wire import SaveResult
from dispatcher.testing.memory import MemoryStore
from tests.support.databases import BACKENDS, _create_pg_database, _drop_pg_database, postgres_url


class Rooms(
    PipelineStore, OutboxStore, KeyStore, DeviceStore, SilenceStore, RuleSetStore, Health,
    Protocol,
):  # fmt: skip
    """Every room, and the conveniences `Store` and `MemoryStore` both give tests."""

    async def save_report(
        self,
        report: Report,
        *,
        targets: Sequence[GroupTarget],
        now: datetime,
        key_name: str,
        rules_version: str,
    ) -> SaveResult: ...
    async def group_reports(self, group_id: str) -> list[Report]: ...
    async def count_reports(self) -> int: ...
    async def keep_service_key(self, name: str, value: str, *, now: datetime) -> str: ...
    async def hand_over_groups(
        self, receivers: Mapping[str, tuple[str, Timing]], *, now: datetime, rules_version: str
    ) -> list[HandOver]: ...


@pytest.fixture(params=[pytest.param("memory", id="memory"), *BACKENDS])
async def rooms(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rooms]:
    if request.param == "memory":
        yield MemoryStore()
        return
    name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'dispatcher.db'}"
    else:
        base = postgres_url()
        assert base is not None
        url, name = await _create_pg_database(base)
    engine = db.create_engine(url)
    await db.upgrade(engine)
    store = Store(engine, writer=db.create_writer(url), reader=db.create_reader(url))
    try:
        yield store
    finally:
        await store.close()
        if name is not None:
            base = postgres_url()
            assert base is not None
            await _drop_pg_database(base, name)
