"""Claim owners on PostgreSQL: an instance's id is alive exactly as long as its lock's
connection, and a lost lock is replaced by a new id, not used on."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from dispatcher.store import db
from dispatcher.store.claims import LOCK_SPACE, ClaimOwner, live_owners

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(db_url: str) -> str:
    if db_url.startswith("sqlite"):
        pytest.skip("claims are signed on PostgreSQL only; SQLite has one sender")
    return db_url


async def owners(url: str) -> set[int]:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(live_owners)
    finally:
        await engine.dispose()


async def test_an_owner_is_alive_as_long_as_its_connection(pg_url: str) -> None:
    engine = db.create_engine(pg_url)
    one, two = ClaimOwner(engine), ClaimOwner(engine)
    try:
        a, b = await one.current(), await two.current()
        assert a != b
        assert await one.current() == a, "the same id while the lock holds"
        assert await owners(pg_url) == {a, b}

        await one.release()
        assert await owners(pg_url) == {b}, "released: gone at once"

        # The connection dropped under it (a killed process, a network cut).
        async with engine.connect() as conn:
            ended = await conn.scalar(
                text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = "
                     "'advisory' AND classid = :space AND objid = :id"),
                {"space": LOCK_SPACE, "id": b},
            )  # fmt: skip
        assert ended is True
        assert await owners(pg_url) == set()
        c = await two.acquire(lost=b)
        assert c != b
        assert await owners(pg_url) == {c}
        assert await two.acquire(lost=b) == c, "a second caller keeps the new id"
    finally:
        await one.release()
        await two.release()
        await engine.dispose()
