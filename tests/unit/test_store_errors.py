"""Which store failures are "not now" (503/507 with Retry-After) and which stay bugs (500)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from dispatcher.store.errors import Overloaded, unavailable
from dispatcher.store.writer import WriterGone


def wrapped(orig: BaseException, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("INSERT ...", {}, orig, connection_invalidated=invalidated)


class CannotConnectNowError(Exception):
    __module__ = "asyncpg.exceptions"


def caused(error: BaseException, by: BaseException) -> BaseException:
    error.__cause__ = by
    return error


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (Overloaded("500 reports wait", retry_after=1), 503, 1),
        (WriterGone("the writer process ended"), 503, 5),
        (sqlite3.OperationalError("database or disk is full"), 507, 60),
        (
            RuntimeError("OperationalError: (sqlite3.OperationalError) database or disk is full"),
            507,
            60,
        ),
        (sqlite3.OperationalError("disk I/O error"), 503, 5),
        (wrapped(ConnectionResetError("reset"), invalidated=True), 503, 5),
        (ConnectionRefusedError(111, "Connect call failed"), 503, 5),
        (caused(RuntimeError("tick"), CannotConnectNowError("starting up")), 503, 5),
        (sa_exc.TimeoutError("QueuePool limit reached"), 503, 5),
    ],
)
def test_not_now_is_refused_with_retry_after(
    error: BaseException, status: int, retry_after: int
) -> None:
    answer = unavailable(error)
    assert answer is not None
    assert (answer.status, answer.retry_after) == (status, retry_after)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad value"),
        KeyError("group"),
        sa_exc.IntegrityError("INSERT ...", {}, Exception("duplicate key")),
        sqlite3.OperationalError("no such table: reports"),
        FileNotFoundError(2, "No such file", "rules/routes.yaml"),
    ],
)
def test_a_bug_stays_a_500(error: BaseException) -> None:
    assert unavailable(error) is None
