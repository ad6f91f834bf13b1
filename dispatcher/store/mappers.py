"""Rows to values: how a database row becomes a group or a silence, and the small conversions
every room shares (labels, seconds, JSON columns, aware times). A report's row is
store/report_row.py's.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
)

from dispatcher.silence import Silence
from dispatcher.store.dbapi import aware
from dispatcher.store.rows import (
    GroupRow,
)


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in raw)


def _group_from_row(row: Any) -> GroupRow:
    return GroupRow(
        id=row.id,
        route_id=row.route_id,
        labels=_labels(row.labels),
        receiver=row.receiver,
        seq=row.seq,
        pending=row.pending,
        next_flush_at=row.next_flush_at,
        last_flush_at=row.last_flush_at,
        rules_version=row.rules_version,
        last_report_at=row.last_report_at,
        repeat_interval=_seconds(row.repeat_interval_s),
        close_after=_seconds(row.close_after_s),
        acked_at=row.acked_at,
        closed_at=row.closed_at,
        created_at=row.created_at,
        escalate_after=_seconds(row.escalate_after_s),
        escalated_at=row.escalated_at,
        group_interval=_seconds(row.group_interval_s) or timedelta(0),
        closed_reason=row.closed_reason,
        handed_over_to=row.handed_over_to,
        took_over_from=row.took_over_from,
        surge_open_at=row.surge_open_at,
        surge_told=row.surge_told,
        recount=row.recount,
    )


def _silence_from_row(r: Any) -> Silence:
    m = dict(r.matchers)
    return Silence(
        id=r.id,
        regions=frozenset(m.get("regions", [])),
        receivers=frozenset(m.get("receivers", [])),
        routes=frozenset(m.get("routes", [])),
        kinds=frozenset(m.get("kinds", [])),
        starts_at=r.starts_at,
        ends_at=r.ends_at,
        author=r.author,
        reason=r.reason,
        created_at=r.created_at,
    )


def _seconds(value: float | None) -> timedelta | None:
    return timedelta(seconds=value) if value is not None else None


def _json_list(raw: Any) -> Any:
    return json.loads(raw) if isinstance(raw, str) else raw


def _aware(value: Any) -> datetime:
    when = aware(value)
    assert when is not None
    return when


def _json_object(value: Any) -> dict[str, Any]:
    """A JSON column read with plain SQL: text on SQLite (and asyncpg), a dict otherwise."""
    return json.loads(value) if isinstance(value, str) else dict(value)


def _insert(conn: Connection, table: Table, row: dict[str, Any]) -> None:
    conn.execute(table.insert().values(**row))
