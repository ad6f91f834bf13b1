"""The SQLite writer process: what happens when it dies, and when the service closes."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from dispatcher.model import Report
from dispatcher.store import db
from dispatcher.store.repo import Store
from dispatcher.store.writer import CALL, WriterGone, WriterProcess
from tests.contract.strikes import T0, TARGET
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(60)


def slow_note(conn: Connection, *, seconds: float, how: str, started: Path | None = None) -> None:
    """A write that takes its time (run in the writer process); `started` is created when
    it begins, so a test can see it is under way."""
    if started is not None:
        started.touch()
    time.sleep(seconds)
    conn.execute(
        text(
            "INSERT INTO rule_sets (version, sha256, applied_at, how) VALUES ('v', 's', :at, :how)"
        ),
        {"at": datetime.now(UTC).replace(tzinfo=None), "how": how},
    )


def report(rid: str) -> Report:
    return Report(source="obs", id=rid, kind="shelling", occurred_at=T0, region="SY0703")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dispatcher.db'}"
    engine = db.create_engine(url)
    await db.upgrade(engine)
    s = Store(engine, writer=db.create_writer(url), reader=db.create_reader(url))
    yield s
    await s.close()


async def save(store: Store, rid: str) -> None:
    await store.save_reports([(report(rid), [TARGET])], now=T0, key_name="k",
                             rules_version="v1")  # fmt: skip


async def notes(store: Store) -> list[str]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(text("SELECT how FROM rule_sets ORDER BY id"))).scalars())


async def test_a_dead_writer_fails_what_it_held_and_the_next_write_starts_another(
    store: Store, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    await save(store, "before")
    writer = store.writer
    assert isinstance(writer, WriterProcess)
    pid = writer.pid
    assert pid is not None
    started = tmp_path / "started"
    held = asyncio.create_task(
        writer.call(CALL, partial(slow_note, seconds=5, how="held", started=started))
    )
    await until(started.exists, what="the writer in its slow transaction")
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WriterGone):
        await held
    await save(store, "after")
    assert writer.pid not in (None, pid), "a new writer process"
    assert "the writer process ended (exit code -9); starting it again" in caplog.text
    assert await store.count_reports() == 2
    assert "held" not in await notes(store), "the write it died in was not committed"


async def test_closing_answers_every_write_already_sent(store: Store, tmp_path: Path) -> None:
    writes = [asyncio.create_task(save(store, f"r{i}")) for i in range(200)]
    await asyncio.sleep(0)  # all of them sent, none answered yet
    await store.close()
    await asyncio.gather(*writes)
    writer = store.writer
    assert isinstance(writer, WriterProcess)
    assert writer.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(writer.pid, 0)  # the process has ended
    with pytest.raises(WriterGone, match="closed"):
        await save(store, "too-late")
    url = f"sqlite+aiosqlite:///{tmp_path / 'dispatcher.db'}"
    again = Store(db.create_engine(url), writer=db.create_writer(url))
    try:
        assert await again.count_reports() == 200
    finally:
        await again.close()


async def test_a_write_that_fails_is_told_to_its_caller_and_the_others_commit(
    store: Store,
) -> None:
    def broken(conn: Connection) -> None:
        raise AssertionError("never runs: a nested function does not pickle")

    good = asyncio.create_task(store.writer.call(CALL, partial(slow_note, seconds=0,  # type: ignore[union-attr]
                                                               how="good")))  # fmt: skip
    not_seconds: Any = "x"  # makes slow_note fail inside the writer
    bad = asyncio.create_task(store.writer.call(CALL, partial(slow_note, seconds=not_seconds,  # type: ignore[union-attr]
                                                              how="bad")))  # fmt: skip
    await good
    with pytest.raises(TypeError):
        await bad
    assert await notes(store) == ["good"]
    with pytest.raises(AttributeError, match="pickle"):
        await store.writer.call(CALL, broken)  # type: ignore[union-attr]
    await save(store, "still-writing")


def returns_a_lock(conn: Connection) -> object:
    """A write whose result cannot travel back (run in the writer process)."""
    return threading.Lock()


async def test_a_result_that_cannot_travel_back_is_an_error_not_a_dead_writer(
    store: Store,
) -> None:
    writer = store.writer
    assert isinstance(writer, WriterProcess)
    await save(store, "before")
    pid = writer.pid
    with pytest.raises(RuntimeError, match="cannot be sent"):
        await writer.call(CALL, returns_a_lock)
    await save(store, "after")
    assert writer.pid == pid, "the same writer carries on"
