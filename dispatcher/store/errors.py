"""Which failures of the store mean "not now" rather than "a bug": the database gone or
refusing connections, the SQLite writer process gone, the disk full, the service's own
queues full. The web layer answers these 503 (507 for a full disk) with Retry-After, so a
reporter sends again later instead of taking a 500 for a lost report. Pure: it only looks
at exceptions.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc


class Overloaded(RuntimeError):
    """A bounded queue is full: the write was refused before it was handed over, so
    nothing of it is stored."""

    def __init__(self, what: str, *, retry_after: int = 1) -> None:
        super().__init__(what)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Unavailable:
    status: int  # 503, or 507 for a full disk
    reason: str  # for the problem's detail and the metric's label
    retry_after: int  # seconds


STORE_RETRY_AFTER = 5  # seconds: a database restart or failover, or the writer restarting

# What PostgreSQL's driver raises when the server has gone or refuses connections (by name,
# so that this module does not import asyncpg on a SQLite-only install).
_ASYNCPG_UNAVAILABLE = {
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "ConnectionFailureError",
    "ConnectionRejectionError",
    "AdminShutdownError",
    "CrashShutdownError",
    "TooManyConnectionsError",
    "InterfaceError",
    "InternalClientError",
}


def unavailable(error: BaseException) -> Unavailable | None:
    """What to answer for `error` if it means the store cannot take writes just now; None
    for anything else (which stays a 500: a bug to fix, not a state to wait out)."""
    for cause in _chain(error):
        if isinstance(cause, Overloaded):
            return Unavailable(503, f"overloaded: {cause}", cause.retry_after)
        if type(cause).__name__ == "WriterGone":  # store/writer.py; not imported here
            return Unavailable(503, "the database writer is restarting", STORE_RETRY_AFTER)
        text = str(cause).lower()
        # Whatever carries it: the writer process sends back what pickles, at worst a
        # RuntimeError naming the error.
        if "database or disk is full" in text or "no space left on device" in text:
            return Unavailable(507, "the database's disk is full", 60)
        if isinstance(cause, sqlite3.DatabaseError) and "disk i/o error" in text:
            return Unavailable(503, "the database cannot write to its disk", STORE_RETRY_AFTER)
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return Unavailable(503, "the database connection was lost", STORE_RETRY_AFTER)
        if isinstance(cause, sa_exc.TimeoutError):  # no pooled connection came free
            return Unavailable(503, "no database connection free", STORE_RETRY_AFTER)
        if type(cause).__module__.startswith("asyncpg") and (
            type(cause).__name__ in _ASYNCPG_UNAVAILABLE
        ):
            return Unavailable(503, "the database is unreachable", STORE_RETRY_AFTER)
        if isinstance(cause, ConnectionError | TimeoutError) or (
            isinstance(cause, OSError) and cause.errno is not None and not cause.filename
        ):
            return Unavailable(503, "the database is unreachable", STORE_RETRY_AFTER)
    return None


def _chain(error: BaseException) -> list[BaseException]:
    """`error`, what it wraps (SQLAlchemy's .orig) and what caused it, each once."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen) or len(seen) > 20:
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
        orig = getattr(e, "orig", None)
        if isinstance(orig, BaseException):
            todo.append(orig)
    return seen
