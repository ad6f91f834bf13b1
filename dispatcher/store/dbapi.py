"""Plain SQL on one connection inside its transaction: the write path's and the hot reads' runner.

The write path and the reads that grow with a surge (a flush's reports, the outbox) run their
SQL text without building SQLAlchemy expressions per row. `on(conn)` gives the runner for the
connection's database: on SQLite the statements go straight to the sqlite3 cursor of the
transaction SQLAlchemy began (`LiteSql`), elsewhere as cached `text()` statements
(`Sql`). Times are bound through `at` and read back through `aware`, so that SQLite's
naive UTC text and PostgreSQL's aware datetimes look the same to the callers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, TextClause, text

# Rows in one INSERT statement on SQLite.
MAX_ROWS_PER_INSERT = 512


def on(conn: Connection) -> Sql:
    """The runner for `conn`'s database."""
    return LiteSql(conn) if conn.dialect.name == "sqlite" else Sql(conn)


class Sql:
    """Runs SQL text on one connection inside its transaction as cached `text()`
    statements (PostgreSQL); `LiteSql` is SQLite's."""

    sqlite = False

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.conn.execute(_clause(sql), params)]

    def count(self, sql: str, params: dict[str, Any]) -> int:
        """Run a statement; how many rows it wrote."""
        return int(self.conn.execute(_clause(sql), params).rowcount)

    def run(self, sql: str, params: dict[str, Any]) -> None:
        self.conn.execute(_clause(sql), params)

    def run_many(self, sql: str, params: Sequence[dict[str, Any]]) -> None:
        if params:
            self.conn.execute(_clause(sql), list(params))

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Rows of `columns`, in order."""
        if rows:
            self.conn.execute(
                _clause(_named_insert(table, tuple(columns))),
                [dict(zip(columns, row, strict=True)) for row in rows],
            )

    def at(self, value: datetime) -> Any:
        """A time as a parameter: every time the write path binds goes through here."""
        return value

    @staticmethod
    def time(value: Any) -> datetime | None:
        """A stored time as an aware UTC datetime (`aware`)."""
        return aware(value)


class LiteSql(Sql):
    """SQLite: the sqlite3 cursor of the transaction SQLAlchemy began (BEGIN IMMEDIATE)."""

    sqlite = True

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        dbapi = conn.connection.driver_connection
        assert isinstance(dbapi, sqlite3.Connection)
        self.cursor = dbapi.cursor()
        self.max_variables = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return list(self.cursor.execute(sql, params))

    def count(self, sql: str, params: dict[str, Any]) -> int:
        return int(self.cursor.execute(sql, params).rowcount)

    def run(self, sql: str, params: dict[str, Any]) -> None:
        self.cursor.execute(sql, params)

    def run_many(self, sql: str, params: Sequence[dict[str, Any]]) -> None:
        if params:
            self.cursor.executemany(sql, params)

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Rows of `columns`, in order: 512 to a statement, the rest with one executemany
        (for thousands of rows a statement of many rows costs half as much a row; for a
        few it costs more)."""
        if not rows:
            return
        cols = tuple(columns)
        most = max(1, min(MAX_ROWS_PER_INSERT, self.max_variables // len(cols)))
        whole = len(rows) - len(rows) % most
        if whole:
            many = _positional_insert(table, cols, most)
            for start in range(0, whole, most):
                chunk = rows[start : start + most]
                self.cursor.execute(many, [v for row in chunk for v in row])
        if whole < len(rows):
            self.cursor.executemany(_positional_insert(table, cols, 1), rows[whole:])

    def data_version(self) -> int:
        """SQLite's count of commits by other connections (PRAGMA data_version)."""
        ((version,),) = list(self.cursor.execute("PRAGMA data_version"))
        return int(version)

    def at(self, value: datetime) -> Any:
        return lite_time(value)


def aware(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite keeps naive UTC text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def lite_time(value: datetime) -> str:
    """A time as SQLAlchemy stores it on SQLite: naive UTC text in its format, so that its
    own reads of the same rows parse them."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


@lru_cache(maxsize=64)
def _clause(sql: str) -> TextClause:
    return text(sql)


@lru_cache(maxsize=64)
def _positional_insert(table: str, columns: tuple[str, ...], rows: int) -> str:
    marks = "(" + ", ".join("?" for _ in columns) + ")"
    values = ", ".join(marks for _ in range(rows))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"  # noqa: S608


@lru_cache(maxsize=16)
def _named_insert(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join(f":{c}" for c in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
