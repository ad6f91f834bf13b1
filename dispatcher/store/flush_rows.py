"""A flush's one read and the writes that answer it: an update with its pushes, a surge's
state, settling or holding a group, a leader's acknowledgement.

Plain functions of a connection (the writes pickle for the SQLite writer process);
`GroupRoom` (store/groups.py) runs them. A flush's read and an update's write are one
transaction's two halves (they agree on `counted`, `told_seq` and the group's guard in
`_as_read`), so they are side by side here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    exists,
    func,
    select,
    update,
)

from dispatcher.group import Counted
from dispatcher.model import Report
from dispatcher.store import dbapi, report_row
from dispatcher.store.claims import live_owners
from dispatcher.store.mappers import _group_from_row
from dispatcher.store.outbox import INSERT_PUSH, _pending, _supersede
from dispatcher.store.rows import (
    Ack,
    GroupRow,
    LastUpdate,
    OutboxItem,
    PendingPush,
)
from dispatcher.store.tables import (
    alert_groups,
    group_acks,
    group_updates,
    incidents,
    reports,
)
from dispatcher.surge import SurgeState

GROUP_REPORTS_UP_TO = (
    "SELECT count(*), sum(report_pk) FROM group_reports "
    "WHERE group_id = :group_id AND report_pk <= :top"
)


# Each in the incident it counts in (its own, or the one that was merged into).
GROUP_REPORTS = (
    f"SELECT {report_row.COUNTED_SELECT_COLUMNS} FROM reports "  # noqa: S608 - constants only
    "JOIN group_reports ON group_reports.report_pk = reports.pk "
    "WHERE group_reports.group_id = :group_id"
)


GROUP_REPORTS_AFTER = f"{GROUP_REPORTS} AND group_reports.report_pk > :top"


def _get_group(conn: Connection, group_id: str) -> GroupRow | None:
    row = conn.execute(select(alert_groups).where(alert_groups.c.id == group_id)).first()
    return _group_from_row(row) if row is not None else None


def _reports_joined(
    conn: Connection, group_id: str, counted: Counted | None
) -> tuple[list[tuple[int, Report]], bool]:
    """The group's report rows after those `counted`, and whether that is all of them (when
    nothing was counted, or the rows counted no longer add up: see `Counted`). Plain SQL,
    as the write path: a busy group holds thousands of reports, and a flush that read them
    all each time (an immediate route flushes at every critical report) grew with the surge.
    The check runs over the group's primary key inside SQLite or PostgreSQL, not in Python."""
    sql = dbapi.on(conn)
    after: int | None = None  # the highest row counted, if the rows up to it add up
    if counted is not None and counted.rows:
        ((rows, pk_sum),) = sql.rows(
            GROUP_REPORTS_UP_TO, {"group_id": group_id, "top": counted.top}
        )
        if (int(rows), int(pk_sum or 0)) == (counted.rows, counted.pk_sum):
            after = counted.top
    if after is None:
        found = sql.rows(GROUP_REPORTS, {"group_id": group_id})
    else:
        found = sql.rows(GROUP_REPORTS_AFTER, {"group_id": group_id, "top": after})
    stored = (report_row.stored(row) for row in found)
    return [(s.pk, s.report) for s in stored], after is None


def _newest_update(conn: Connection, group_id: str, *columns: Any) -> Any:
    """`columns` of the group's last update, or None."""
    return conn.execute(
        select(*columns)
        .where(group_updates.c.group_id == group_id)
        .order_by(group_updates.c.seq.desc())
        .limit(1)
    ).first()


def _last_update(conn: Connection, group_id: str) -> tuple[datetime, dict[str, Any]] | None:
    row = _newest_update(conn, group_id, group_updates.c.created_at, group_updates.c.summary)
    return (row.created_at, dict(row.summary)) if row is not None else None


def _flush_last(conn: Connection, group_id: str, told_seq: int | None) -> LastUpdate | None:
    last = _newest_update(conn, group_id, group_updates.c.seq, group_updates.c.created_at)
    if last is None:
        return None
    if last.seq == told_seq:
        return LastUpdate(last.seq, last.created_at, None)
    summary = conn.execute(
        select(group_updates.c.summary).where(
            group_updates.c.group_id == group_id, group_updates.c.seq == last.seq
        )
    ).scalar_one()
    return LastUpdate(last.seq, last.created_at, dict(summary.get("state", {})))


def _acks(conn: Connection, group_id: str) -> list[Ack]:
    rows = conn.execute(
        select(group_acks)
        .where(group_acks.c.group_id == group_id)
        .order_by(group_acks.c.at, group_acks.c.id)
    )
    return [Ack(r.leader_id, r.at, r.responding, r.note) for r in rows]


def _count_live_incidents(conn: Connection, regions: frozenset[str], since: datetime) -> int:
    """Incidents in `regions` that occurred since `since` and that some report still counts
    (its latest revision is not a retraction), counted in the database."""
    newer = reports.alias("newer")
    merged = (
        select(incidents.c.merged_into)
        .where(incidents.c.id == reports.c.incident_id)
        .scalar_subquery()
    )
    counted_in = func.coalesce(merged, reports.c.incident_id)
    query = select(func.count(func.distinct(counted_in))).where(
        reports.c.region.in_(sorted(regions)),
        reports.c.occurred_at >= since,
        reports.c.status != "retracted",
        ~exists().where(
            newer.c.source == reports.c.source,
            newer.c.ext_id == reports.c.ext_id,
            newer.c.revision > reports.c.revision,
        ),
    )
    return int(conn.execute(query).scalar_one())


def _record_update(
    conn: Connection,
    group: GroupRow,
    now: datetime,
    summary: dict[str, Any],
    outbox: Sequence[OutboxItem],
    rules_version: str,
    lease: timedelta | None,
    wakeup: datetime | None,
    close: bool,
    escalate: bool,
    owner: int | None = None,
) -> list[PendingPush] | None:
    """Write update seq+1 of a group and its outbox rows (claimed for `lease` if given);
    None when the group moved on since it was read."""
    seq = group.seq + 1
    pending: Any
    next_flush_at: Any
    if close or escalate:
        where, pending, next_flush_at = _as_read(group), False, None if close else wakeup
    else:
        # Not undone by a report that joined meanwhile: under a steady stream of reports
        # every flush of a busy group would lose that race, and none would be sent.
        joined = alert_groups.c.last_report_at.is_distinct_from(group.last_report_at)
        where = and_(
            alert_groups.c.id == group.id,
            alert_groups.c.seq == group.seq,
            alert_groups.c.closed_at.is_(None),
        )
        pending = case((joined, alert_groups.c.pending), else_=False)
        next_flush_at = case((joined, now + group.group_interval), else_=wakeup)
    claimed = conn.execute(
        update(alert_groups)
        .where(where)
        .values(
            seq=seq,
            pending=pending,
            # An escalation goes to another team: the receiving team's reminders keep time.
            last_flush_at=group.last_flush_at if escalate else now,
            next_flush_at=next_flush_at,
            closed_at=now if close else None,
            escalated_at=now if escalate else group.escalated_at,
        )
    )
    if claimed.rowcount != 1:
        return None
    conn.execute(
        group_updates.insert().values(
            group_id=group.id,
            seq=seq,
            created_at=now,
            summary=summary,
            rules_version=rules_version,
        )
    )
    if not outbox:
        return []
    _supersede(conn, group.id, seq, outbox)
    sql = dbapi.on(conn)
    claimed_until = sql.at(now + lease) if lease is not None else None
    if owner is not None and owner not in live_owners(conn):
        owner = None  # its lock is gone: the claim holds by its lease alone
    sql.run_many(
        INSERT_PUSH,
        [
            {
                "group_id": group.id,
                "seq": seq,
                "leader_id": item.leader_id,
                "device_id": item.device_id,
                "channel": item.channel,
                "title": item.title,
                "body": item.body,
                "data": json.dumps(item.data, ensure_ascii=False),
                "collapse_key": item.collapse_key,
                "priority": item.priority,
                "now": sql.at(now),
                "expires_at": sql.at(item.expires_at) if item.expires_at else None,
                "claimed_until": claimed_until,
                "claimed_by": owner if lease is not None else None,
            }
            for item in outbox
        ],
    )
    if lease is None:
        return []
    return _pending(
        sql, "n.group_id = :group_id AND n.seq = :seq", {"group_id": group.id, "seq": seq}
    )


def _record_surge(
    conn: Connection,
    group: GroupRow,
    now: datetime,
    summary: dict[str, Any],
    outbox: Sequence[OutboxItem],
    rules_version: str,
    state: SurgeState,
    wakeup: datetime | None,
    close: bool,
) -> list[PendingPush] | None:
    written = _record_update(
        conn, group, now, summary, outbox, rules_version, None, wakeup, close, False
    )
    if written is not None:
        conn.execute(
            update(alert_groups)
            .where(alert_groups.c.id == group.id)
            .values(surge_open_at=state.open_since, surge_told=state.told)
        )
    return written


def _as_read(group: GroupRow) -> Any:
    """The group is still as `group` read it: open, same update, same pending change, no
    report since."""
    return and_(
        alert_groups.c.id == group.id,
        alert_groups.c.seq == group.seq,
        alert_groups.c.pending == group.pending,
        alert_groups.c.closed_at.is_(None),
        alert_groups.c.last_report_at.is_not_distinct_from(group.last_report_at),
    )


def _settle(conn: Connection, *, group: GroupRow, wakeup: datetime | None) -> bool:
    result = conn.execute(
        update(alert_groups).where(_as_read(group)).values(pending=False, next_flush_at=wakeup)
    )
    return result.rowcount == 1


def _ack(
    conn: Connection,
    *,
    group_id: str,
    leader_id: str,
    at: datetime,
    responding: bool,
    note: str | None,
) -> GroupRow | None:
    row = conn.execute(select(alert_groups).where(alert_groups.c.id == group_id)).first()
    if row is None or row.closed_at is not None:
        return None
    conn.execute(
        group_acks.insert().values(
            group_id=group_id,
            leader_id=leader_id,
            at=at,
            responding=responding,
            note=note,
        )
    )
    due = at if not row.pending or row.next_flush_at is None else min(row.next_flush_at, at)
    conn.execute(
        update(alert_groups)
        .where(alert_groups.c.id == group_id)
        .values(pending=True, next_flush_at=due, acked_at=row.acked_at or at)
    )
    return _group_from_row(
        conn.execute(select(alert_groups).where(alert_groups.c.id == group_id)).one()
    )


def _hold(conn: Connection, *, group: GroupRow, until: datetime) -> bool:
    result = conn.execute(update(alert_groups).where(_as_read(group)).values(next_flush_at=until))
    return result.rowcount == 1
