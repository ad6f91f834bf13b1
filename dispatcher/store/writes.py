"""The report write path: revisions, incidents and alert groups for each new report.

This is the hottest code in the service (a surge is thousands of reports a second), so its
SQL is written out once, portable between SQLite and PostgreSQL, and run without building
SQLAlchemy expressions per row: on SQLite straight on the sqlite3 connection of the writer's
transaction, elsewhere as cached `text()` statements. Building Core expressions for the
seven statements of each report cost over a millisecond per report.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, TextClause, text

from dispatcher.group import first_flush, next_flush_after_report
from dispatcher.incidents import Candidate, MergeRule, bounding_box, pick
from dispatcher.model import Casualties, Point, Report

# Incidents considered for a merge: the most recent ones of the kind nearby. A surge puts
# many incidents in one square kilometre; a few dozen is still far more than a real overlap.
MAX_CANDIDATES = 50

REPORT_COLUMNS = (
    "pk, source, ext_id, revision, kind, status, occurred_at, received_at, lat, lon, "
    "given_region, region, killed, injured, trapped, rescued, notes, key_name, rules_version, "
    "incident_id"
)
LATEST = (
    f"SELECT {REPORT_COLUMNS} FROM reports "  # noqa: S608 - constants only
    "WHERE source = :source AND ext_id = :ext_id "
    "ORDER BY revision DESC LIMIT 1"
)
REVISION = (
    f"SELECT {REPORT_COLUMNS} FROM reports "  # noqa: S608 - constants only
    "WHERE source = :source AND ext_id = :ext_id AND revision = :revision"
)
INSERT_REPORT = (
    "INSERT INTO reports (source, ext_id, revision, kind, status, occurred_at, received_at, "
    "lat, lon, given_region, region, killed, injured, trapped, rescued, notes, key_name, "
    "rules_version, incident_id) VALUES (:source, :ext_id, :revision, :kind, :status, "
    ":occurred_at, :received_at, :lat, :lon, :given_region, :region, :killed, :injured, "
    ":trapped, :rescued, :notes, :key_name, :rules_version, :incident_id) RETURNING pk"
)
INCIDENT_EXISTS = "SELECT id FROM incidents WHERE id = :id"
INSERT_INCIDENT = (
    "INSERT INTO incidents (id, kind, region, lat, lon, occurred_at, created_at, named) "
    "VALUES (:id, :kind, :region, :lat, :lon, :occurred_at, :created_at, :named)"
)
# One source reporting twice has seen two events: incidents it already joined are skipped.
CANDIDATES = (
    "SELECT i.id, i.lat, i.lon, i.occurred_at FROM incidents i "  # noqa: S608 - constants only
    "WHERE i.kind = :kind AND i.occurred_at BETWEEN :t0 AND :t1 "
    "AND i.lat BETWEEN :lat0 AND :lat1 AND i.lon BETWEEN :lon0 AND :lon1 "
    "AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.incident_id = i.id AND r.source = :source) "
    "ORDER BY i.occurred_at DESC LIMIT " + str(MAX_CANDIDATES)
)
SOURCES_OF = "SELECT DISTINCT incident_id, source FROM reports WHERE incident_id IN "
OPEN_GROUP = (
    "SELECT id, pending, next_flush_at, last_flush_at FROM alert_groups "
    "WHERE route_id = :route_id AND group_key = :group_key AND closed_at IS NULL"
)
INSERT_GROUP = (
    "INSERT INTO alert_groups (id, route_id, group_key, labels, receiver, created_at, "
    "next_flush_at, last_flush_at, pending, seq, group_interval_s, rules_version, "
    "last_report_at, repeat_interval_s, close_after_s, escalate_after_s) VALUES "
    "(:id, :route_id, :group_key, :labels, :receiver, :created_at, :next_flush_at, NULL, "
    ":pending, 0, :group_interval_s, :rules_version, :created_at, :repeat_interval_s, "
    ":close_after_s, :escalate_after_s)"
)
TOUCH_GROUP = (
    "UPDATE alert_groups SET pending = :pending, next_flush_at = :next_flush_at, "
    "receiver = :receiver, last_report_at = :now, repeat_interval_s = :repeat_interval_s, "
    "close_after_s = :close_after_s WHERE id = :id"
)
JOIN_GROUP = (
    "INSERT INTO group_reports (group_id, report_pk, added_at) "
    "VALUES (:group_id, :report_pk, :added_at)"
)


class Sql:
    """Runs the statements above on one connection inside its transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        # Open groups this transaction already set due: (route_id, group_key) -> group id.
        self.touched: dict[tuple[str, str], str] = {}
        # SQLAlchemy began the transaction (BEGIN IMMEDIATE) on this same sqlite3 connection.
        self.cursor = conn.connection.driver_connection.cursor() if self.sqlite else None  # type: ignore[union-attr]

    def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self.cursor is not None:
            return list(self.cursor.execute(sql, params))
        return [tuple(row) for row in self.conn.execute(_clause(sql), params)]

    def run(self, sql: str, params: dict[str, Any]) -> None:
        if self.cursor is not None:
            self.cursor.execute(sql, params)
        else:
            self.conn.execute(_clause(sql), params)

    def run_many(self, sql: str, params: Sequence[dict[str, Any]]) -> None:
        if not params:
            return
        if self.cursor is not None:
            self.cursor.executemany(sql, params)
        else:
            self.conn.execute(_clause(sql), list(params))

    def at(self, value: datetime) -> Any:
        """A time as a parameter: every time the write path binds goes through here."""
        return _lite(value) if self.sqlite else value

    def time(self, value: Any) -> datetime | None:
        """A stored time as an aware UTC datetime (SQLite keeps naive UTC text)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=64)
def _clause(sql: str) -> TextClause:
    return text(sql)


def _lite(value: datetime) -> str:
    """A time as SQLAlchemy stores it on SQLite: naive UTC text in its format, so that its
    own reads of the same rows parse them."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC time")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def stored_from_row(sql: Sql, row: tuple[Any, ...]) -> tuple[Report, int, datetime, str, str]:
    """A row of REPORT_COLUMNS as (report, pk, received_at, key_name, rules_version)."""
    (pk, source, ext_id, revision, kind, status, occurred_at, received_at, lat, lon,
     given_region, region, killed, injured, trapped, rescued, notes, key_name, rules_version,
     incident_id) = row  # fmt: skip
    occurred = sql.time(occurred_at)
    received = sql.time(received_at)
    assert occurred is not None
    assert received is not None
    report = Report(
        source=source,
        id=ext_id,
        kind=kind,
        occurred_at=occurred,
        region=region,
        casualties=Casualties(killed, injured, trapped, rescued),
        status=status,
        revision=revision,
        location=Point(lat, lon) if lat is not None and lon is not None else None,
        given_region=given_region,
        notes=notes,
        incident=incident_id,
    )
    return report, int(pk), received, key_name, rules_version


def latest_revision(sql: Sql, source: str, ext_id: str) -> tuple[Any, ...] | None:
    rows = sql.rows(LATEST, {"source": source, "ext_id": ext_id})
    return rows[0] if rows else None


def revision(sql: Sql, source: str, ext_id: str, rev: int) -> tuple[Any, ...] | None:
    rows = sql.rows(REVISION, {"source": source, "ext_id": ext_id, "revision": rev})
    return rows[0] if rows else None


def assign_incident(
    sql: Sql, report: Report, latest: Report | None, now: datetime, merge: MergeRule
) -> tuple[str, bool]:
    """The incident a new revision belongs to, and whether it joined another report's."""
    if report.incident is not None:
        found = sql.rows(INCIDENT_EXISTS, {"id": report.incident})
        if not found:
            new_incident(sql, report, now, report.incident, named=True)
        return report.incident, bool(found)
    if latest is not None and latest.incident is not None:
        return latest.incident, False  # a revision stays with its incident
    if report.location is not None:
        lat0, lat1, lon0, lon1 = bounding_box(report.location, merge.radius_m)
        rows = sql.rows(
            CANDIDATES,
            {
                "kind": report.kind,
                "t0": sql.at(report.occurred_at - merge.window),
                "t1": sql.at(report.occurred_at + merge.window),
                "lat0": lat0,
                "lat1": lat1,
                "lon0": lon0,
                "lon1": lon1,
                "source": report.source,
            },
        )
        if rows:
            ids = [row[0] for row in rows]
            sources: dict[str, set[str]] = {i: set() for i in ids}
            # Only placeholders are formatted in; the ids are bound.
            marks = ", ".join(f":i{n}" for n in range(len(ids)))
            query = f"{SOURCES_OF}({marks})"
            for inc, source in sql.rows(query, {f"i{n}": i for n, i in enumerate(ids)}):
                sources[inc].add(source)
            candidates = []
            for iid, lat, lon, occurred_at in rows:
                at = sql.time(occurred_at)
                assert at is not None
                candidates.append(
                    Candidate(iid, report.kind, Point(lat, lon), at, frozenset(sources[iid]))
                )
            chosen = pick(report, candidates, merge)
            if chosen is not None:
                return chosen, True
    return new_incident(sql, report, now, uuid.uuid4().hex, named=False), False


def new_incident(sql: Sql, report: Report, now: datetime, incident_id: str, *, named: bool) -> str:
    sql.run(
        INSERT_INCIDENT,
        {
            "id": incident_id,
            "kind": report.kind,
            "region": report.region,
            "lat": report.location.lat if report.location else None,
            "lon": report.location.lon if report.location else None,
            "occurred_at": sql.at(report.occurred_at),
            "created_at": sql.at(now),
            "named": named,
        },
    )
    return incident_id


def insert_report(sql: Sql, r: Report, now: datetime, key_name: str, rules_version: str) -> int:
    c = r.casualties
    (row,) = sql.rows(
        INSERT_REPORT,
        {
            "source": r.source,
            "ext_id": r.id,
            "revision": r.revision,
            "kind": r.kind,
            "status": r.status,
            "occurred_at": sql.at(r.occurred_at),
            "received_at": sql.at(now),
            "lat": r.location.lat if r.location else None,
            "lon": r.location.lon if r.location else None,
            "given_region": r.given_region,
            "region": r.region,
            "killed": c.killed,
            "injured": c.injured,
            "trapped": c.trapped,
            "rescued": c.rescued,
            "notes": r.notes,
            "key_name": key_name,
            "rules_version": rules_version,
            "incident_id": r.incident,
        },
    )
    return int(row[0])


def join_group(
    sql: Sql,
    *,
    route_id: str,
    group_key: str,
    labels: Sequence[tuple[str, str]],
    receiver: str,
    timing: Any,
    report_pk: int,
    now: datetime,
    rules_version: str,
) -> str:
    """Add a report to its open alert group (opening it if needed) and set the group's timer.

    A group's timer is set by the first of its reports in a transaction: the later ones
    would find it pending with the same due time, so they only join."""
    known = sql.touched.get((route_id, group_key))
    if known is not None:
        # Its last_report_at may lag by the spread of one group commit (milliseconds).
        sql.run(JOIN_GROUP, {"group_id": known, "report_pk": report_pk, "added_at": sql.at(now)})
        return known
    rows = sql.rows(OPEN_GROUP, {"route_id": route_id, "group_key": group_key})
    if not rows:
        group_id = uuid.uuid4().hex
        sql.run(
            INSERT_GROUP,
            {
                "id": group_id,
                "route_id": route_id,
                "group_key": group_key,
                "labels": json.dumps([list(kv) for kv in labels], ensure_ascii=False),
                "receiver": receiver,
                "created_at": sql.at(now),
                "next_flush_at": sql.at(first_flush(now, timing)),
                "pending": True,
                "group_interval_s": timing.group_interval.total_seconds(),
                "rules_version": rules_version,
                "repeat_interval_s": timing.repeat_interval.total_seconds(),
                "close_after_s": timing.close_after.total_seconds(),
                "escalate_after_s": timing.escalate_after.total_seconds()
                if timing.escalate_after is not None
                else None,
            },
        )
    else:
        group_id, pending, next_flush_at, last_flush_at = rows[0]
        due = next_flush_after_report(
            now=now,
            timing=timing,
            pending=bool(pending),
            next_flush_at=sql.time(next_flush_at),
            last_flush_at=sql.time(last_flush_at),
        )
        sql.run(
            TOUCH_GROUP,
            {
                "pending": True,
                "next_flush_at": sql.at(due),
                "receiver": receiver,
                "id": group_id,
                "now": sql.at(now),
                "repeat_interval_s": timing.repeat_interval.total_seconds(),
                "close_after_s": timing.close_after.total_seconds(),
            },
        )
    sql.run(JOIN_GROUP, {"group_id": group_id, "report_pk": report_pk, "added_at": sql.at(now)})
    sql.touched[(route_id, group_key)] = str(group_id)
    return str(group_id)


def with_incident(report: Report, incident: str) -> Report:
    return replace(report, incident=incident)
