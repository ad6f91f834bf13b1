"""Real databases for tests: a fresh SQLite file, and a fresh PostgreSQL database per test.

PostgreSQL tests run when DISPATCHER_TEST_POSTGRES_URL is set (`.ci/run` sets it to the
machine's server); elsewhere, point it at any server where the user may CREATE DATABASE:
    DISPATCHER_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test pytest
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_ENV = "DISPATCHER_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(postgres_url() is None, reason=f"{POSTGRES_ENV} is not set"),
        ],
    ),
]


async def _create_pg_database(base: str) -> tuple[str, str]:
    name = f"dispatcher_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    return url, name


async def _drop_pg_database(base: str, name: str) -> None:
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A SQLAlchemy URL for an empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'dispatcher.db'}"
        return
    base = postgres_url()
    assert base is not None
    url, name = await _create_pg_database(base)
    try:
        yield url
    finally:
        await _drop_pg_database(base, name)
