"""Opening the store: the engine for SQLite or PostgreSQL, its pragmas, and migrations.

SQLite is the embedded default (one file under ./data/, WAL); PostgreSQL scales out.
Migrations are Alembic's, applied at start or by `dispatcher db upgrade`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from dispatcher.store.writer import WriterProcess

MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(
    url: str, *, sqlite_synchronous: str = "FULL", immediate: bool = False
) -> AsyncEngine:
    """An async engine for `url`; for SQLite, makes the data folder and sets durable pragmas.
    `immediate`: SQLite transactions take the write lock up front (for a command that
    writes next to a running service: it waits its turn instead of failing)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # One connection: SQLite has one writer at a time anyway, and a single connection makes
    # writers queue in the pool instead of failing with "database is locked".
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
    # This connection only reads once the service runs (every write goes through the
    # writer below), so its transactions begin DEFERRED: in WAL a reader never takes the
    # write lock, never waits for the writer, and never makes it wait.
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
    _sqlite_pragmas(engine.sync_engine, sqlite_synchronous, begin=begin)
    return engine


def create_writer(url: str, *, sqlite_synchronous: str = "FULL") -> WriterProcess | None:
    """For SQLite, the writer process that makes every write (see store/writer.py),
    started at the first write. None for other databases, whose transactions the async
    engine runs."""
    if make_url(url).get_backend_name() != "sqlite":
        return None
    from dispatcher.store.writer import WriterProcess

    return WriterProcess(url, synchronous=sqlite_synchronous)


def create_sync_writer(url: str, synchronous: str = "FULL") -> Engine:
    """The writer process's engine: plain sqlite3 on the file, every transaction BEGIN
    IMMEDIATE, one connection."""
    engine = _sqlite_sync_engine(url, synchronous, begin="BEGIN IMMEDIATE", connections=1)
    assert engine is not None, "the writer process is for SQLite only"
    return engine


def create_reader(url: str, *, sqlite_synchronous: str = "FULL") -> Engine | None:
    """For SQLite, a plain (sync) engine on the same file for the reads a flush makes, run
    together in one worker thread: through aiosqlite each statement is several hops between
    the event loop and its thread, and under load every hop waits its turn. None for other
    databases."""
    return _sqlite_sync_engine(url, sqlite_synchronous, begin="BEGIN", connections=4)


def _sqlite_sync_engine(
    url: str, synchronous: str, *, begin: str, connections: int
) -> Engine | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    engine = create_sync_engine(
        parsed.set(drivername="sqlite"),
        pool_size=connections,
        max_overflow=0,
        connect_args={"check_same_thread": False},  # used from worker threads, one at a time
    )
    _sqlite_pragmas(engine, synchronous, begin=begin)
    return engine


def _sqlite_pragmas(engine: Engine, synchronous: str, *, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # SQLAlchemy emits `begin` below instead of the driver's own BEGIN. For the writer
        # it is IMMEDIATE: a DEFERRED transaction that reads first and writes later fails
        # with "database is locked" at once, busy_timeout or not, if another connection
        # committed in between; IMMEDIATE takes the write lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


def _alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


def _revisions(connection: Connection) -> tuple[str | None, str | None]:
    current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
    return current, head


async def upgrade(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """Apply every pending migration; return (revision before, revision after)."""
    async with engine.connect() as conn:
        before, _ = await conn.run_sync(_revisions)
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
    async with engine.connect() as conn:
        after, _ = await conn.run_sync(_revisions)
    return before, after
