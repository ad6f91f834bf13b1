"""The report write path: revisions, incidents and alert groups for each new report.

This is the hottest code in the service (a surge is thousands of reports a second). A
transaction's reports are decided in Python and written with one `executemany` per table:
their revisions are looked up in one query, the incidents they may join come from an
in-memory index on SQLite (`IncidentMemory`) or a query per report on PostgreSQL, and each
alert group they join is read and set once. Its SQL is written out once, portable between
SQLite and PostgreSQL, and run without building SQLAlchemy expressions per row: on SQLite
straight on the sqlite3 connection of the writer's transaction, elsewhere as cached
`text()` statements.

What a SQLite commit costs is mostly the pages it dirties, so every index that rows are
added to grows at one end where it can: incident ids begin with the time, and SQLite keeps
no spatial index of incidents (the writer's memory answers the merge lookup).
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import Connection, TextClause, text

from dispatcher.group import GroupTarget, first_flush, next_flush_after_report
from dispatcher.incidents import Candidate, IncidentIndex, MergeRule, bounding_box, pick
from dispatcher.model import Casualties, Point, Report

log = logging.getLogger("dispatcher.store")

# Incidents considered for a merge by the SQL lookup: the most recent ones of the kind
# nearby. A surge puts many incidents in one square kilometre; a few dozen is still far
# more than a real overlap.
MAX_CANDIDATES = 50
# The writer's memory holds the incidents that occurred this long before now; a report of
# an older strike looks its incidents up in the table.
MEMORY_HORIZON = timedelta(hours=6)
# Rows in one INSERT statement on SQLite, as a power of two (statements are cached by size).
MAX_ROWS_PER_INSERT = 512

REPORT_COLUMNS = (
    "pk, source, ext_id, revision, kind, status, occurred_at, received_at, lat, lon, "
    "given_region, region, killed, injured, trapped, rescued, notes, key_name, rules_version, "
    "incident_id"
)
REVISIONS = {
    # Every stored revision of a transaction's (source, id) pairs, in one query.
    "sqlite": (
        f"SELECT {REPORT_COLUMNS} FROM reports WHERE (source, ext_id) IN "  # noqa: S608
        "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:keys))"
    ),
    "postgresql": (
        f"SELECT {REPORT_COLUMNS} FROM reports WHERE (source, ext_id) IN "  # noqa: S608
        "(SELECT * FROM unnest(CAST(:sources AS VARCHAR[]), CAST(:ids AS VARCHAR[])))"
    ),
}
NEXT_PKS = {
    "sqlite": "SELECT coalesce(max(pk), 0) FROM reports",
    "postgresql": (
        "SELECT nextval(pg_get_serial_sequence('reports', 'pk')) FROM generate_series(1, :n)"
    ),
}
REPORT_INSERT_COLUMNS = tuple(c.strip() for c in REPORT_COLUMNS.split(","))
INCIDENT_INSERT_COLUMNS = ("id", "kind", "region", "lat", "lon", "occurred_at", "created_at",
                           "named")  # fmt: skip
JOIN_INSERT_COLUMNS = ("group_id", "report_pk", "added_at")
INCIDENT_EXISTS = "SELECT id FROM incidents WHERE id = :id"
# One source reporting twice has seen two events: incidents it already joined are skipped.
CANDIDATES = (
    "SELECT i.id, i.lat, i.lon, i.occurred_at FROM incidents i "  # noqa: S608 - constants only
    "WHERE i.kind = :kind AND i.occurred_at BETWEEN :t0 AND :t1 "
    "AND i.lat BETWEEN :lat0 AND :lat1 AND i.lon BETWEEN :lon0 AND :lon1 "
    "AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.incident_id = i.id AND r.source = :source) "
    "ORDER BY i.occurred_at DESC LIMIT " + str(MAX_CANDIDATES)
)
SOURCES_OF = "SELECT DISTINCT incident_id, source FROM reports WHERE incident_id IN "
RECENT_INCIDENTS = (
    "SELECT id, kind, lat, lon, occurred_at FROM incidents "
    "WHERE occurred_at >= :since AND lat IS NOT NULL AND lon IS NOT NULL"
)
RECENT_SOURCES = (
    "SELECT DISTINCT r.incident_id, r.source FROM incidents i "
    "JOIN reports r ON r.incident_id = i.id "
    "WHERE i.occurred_at >= :since AND i.lat IS NOT NULL AND i.lon IS NOT NULL"
)
OPEN_GROUP = (
    "SELECT id, pending, next_flush_at, last_flush_at FROM alert_groups "
    "WHERE route_id = :route_id AND group_key = :group_key AND closed_at IS NULL"
)
INSERT_GROUP = (
    "INSERT INTO alert_groups (id, route_id, group_key, labels, receiver, created_at, "
    "next_flush_at, last_flush_at, pending, seq, group_interval_s, rules_version, "
    "last_report_at, repeat_interval_s, close_after_s, escalate_after_s) VALUES "
    "(:id, :route_id, :group_key, :labels, :receiver, :created_at, :next_flush_at, NULL, "
    ":pending, 0, :group_interval_s, :rules_version, :last_report_at, :repeat_interval_s, "
    ":close_after_s, :escalate_after_s)"
)
TOUCH_GROUP = (
    "UPDATE alert_groups SET pending = :pending, next_flush_at = :next_flush_at, "
    "receiver = :receiver, last_report_at = :now, repeat_interval_s = :repeat_interval_s, "
    "close_after_s = :close_after_s WHERE id = :id"
)


@dataclass(frozen=True, slots=True)
class StoredReport:
    report: Report
    pk: int
    received_at: datetime
    key_name: str
    rules_version: str


@dataclass(frozen=True, slots=True)
class SaveResult:
    outcome: Literal["created", "duplicate", "stale"]
    stored: StoredReport  # the new row, the one already held, or (stale) the newer one
    group_ids: tuple[str, ...] = ()
    merged: bool = False  # joined an incident another report had opened


@dataclass(frozen=True, slots=True)
class ReportWrite:
    """The reports of one API request, saved in order within a transaction."""

    items: Sequence[tuple[Report, Sequence[GroupTarget]]]
    now: datetime
    key_name: str
    rules_version: str


def new_incident_prefix() -> str:
    """The first 24 of an incident id's 32 hex digits, one per transaction: milliseconds
    since 1970, then 48 random bits; a count within the transaction follows. Ids that grow
    with time are added at the end of the incidents' index instead of all over it."""
    return f"{time.time_ns() // 1_000_000 & (16**12 - 1):012x}{secrets.token_hex(6)}"


class IncidentMemory:
    """The SQLite writer's `IncidentIndex`, kept equal to the incidents table.

    Only the writer adds incidents on SQLite, so after each commit it adds what the commit
    added. Should another connection write to the file (another process), SQLite's
    `data_version` tells, and the index is read from the table again."""

    def __init__(self, merge: MergeRule) -> None:
        self.merge = merge
        self.index: IncidentIndex | None = None
        self._seen: tuple[int, int] | None = None  # (connection, data_version) of the last look

    def sync(self, sql: Sql, now: datetime) -> IncidentIndex:
        """The index, read again if the table changed behind it; inside a write transaction."""
        seen = (id(sql.conn.connection.driver_connection), sql.data_version())
        if self.index is None or seen != self._seen:
            if self.index is not None:
                log.warning("another connection wrote to the database: incidents read again")
            self.index = self._load(sql, now - MEMORY_HORIZON)
        elif now - MEMORY_HORIZON - self.index.since > timedelta(minutes=10):
            self.index.forget_before(now - MEMORY_HORIZON)
        self._seen = seen
        return self.index

    def _load(self, sql: Sql, since: datetime) -> IncidentIndex:
        index = IncidentIndex(self.merge, since=since)
        sources: dict[str, set[str]] = {}
        for incident_id, source in sql.rows(RECENT_SOURCES, {"since": sql.at(since)}):
            sources.setdefault(incident_id, set()).add(source)
        for incident_id, kind, lat, lon, occurred_at in sql.rows(
            RECENT_INCIDENTS, {"since": sql.at(since)}
        ):
            at = sql.time(occurred_at)
            assert at is not None
            index.add(incident_id, kind, Point(lat, lon), at, sources.get(incident_id, ()))
        return index

    def committed(self, writer: ReportWriter) -> None:
        """What a committed transaction added, added to the index."""
        if self.index is None:
            return
        for entry in writer.fresh_incidents():
            assert entry.location is not None
            self.index.add(entry.id, entry.kind, entry.location, entry.occurred_at,
                           entry.sources)  # fmt: skip
        for incident_id, joined in writer.joined.items():
            for source in joined:
                self.index.join(incident_id, source)

    def forget(self) -> None:
        """After a failed commit nothing is known to be added; read again next time."""
        self.index = None


@dataclass(slots=True)
class _Group:
    id: str
    new: bool
    target: GroupTarget
    first_now: datetime
    last_now: datetime
    existing: tuple[Any, ...] | None = None  # (pending, next_flush_at, last_flush_at)


@dataclass(slots=True)
class ReportWriter:
    """Writes reports within one transaction; one per transaction.

    `save` decides each report in order (duplicate, stale, or a new revision with its
    incident and groups) and then writes the rows of all of them, so a later `save` or any
    other statement in the transaction sees them. Incidents made or joined here are also
    kept here until the commit, since the merge lookup (memory or SQL) cannot see them yet.
    """

    sql: Sql
    merge: MergeRule
    memory: IncidentIndex | None = None  # SQLite: the writer's memory of committed incidents
    fresh: IncidentIndex = field(init=False)  # incidents made in this transaction
    joined: dict[str, set[str]] = field(default_factory=dict)  # committed ones joined, by whom
    made: set[str] = field(default_factory=set)  # ids of the incidents made here

    _incident_rows: list[tuple[Any, ...]] = field(default_factory=list)
    _id_prefix: str = field(init=False)
    _count: int = 0

    def __post_init__(self) -> None:
        self.fresh = IncidentIndex(self.merge, since=datetime.min.replace(tzinfo=UTC))
        self._id_prefix = new_incident_prefix()

    def fresh_incidents(self) -> list[Candidate]:
        """The incidents with coordinates made in this transaction, with their sources."""
        return list(self.fresh)

    def save(self, requests: Sequence[ReportWrite]) -> list[list[SaveResult]]:
        sql = self.sql
        held: dict[tuple[str, str], dict[int, StoredReport]] = {}
        keys = list({(r.source, r.id): None for w in requests for r, _ in w.items})
        for row in sql.revisions(keys):
            stored = StoredReport(*stored_from_row(sql, row))
            key = (stored.report.source, stored.report.id)
            held.setdefault(key, {})[stored.report.revision] = stored
        pks = sql.next_pks(sum(len(w.items) for w in requests))
        rows: list[tuple[Any, ...]] = []
        joins: list[tuple[str, int, Any]] = []
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], _Group] = {}
        out: list[list[SaveResult]] = []
        for w in requests:
            now, at_now, key_name, rules_version = w.now, sql.at(w.now), w.key_name, w.rules_version
            results: list[SaveResult] = []
            out.append(results)
            for report, targets in w.items:
                key = (report.source, report.id)
                revs = held.get(key)
                latest = None
                if revs is not None:
                    latest = revs[max(revs)]
                    if latest.report.revision >= report.revision:
                        # A retry of a revision we hold (even an old one, delayed by a bad
                        # link) is a duplicate; an older revision we never saw is stale.
                        same = revs.get(report.revision)
                        results.append(
                            SaveResult("duplicate", same) if same else SaveResult("stale", latest)
                        )
                        continue
                occurred = sql.at(report.occurred_at)
                incident, merged = self._incident(
                    report, latest.report if latest else None, occurred, at_now
                )
                report = report._replace(incident=incident)
                pk = next(pks)
                stored = StoredReport(report, pk, now, key_name, rules_version)
                if revs is None:
                    held[key] = {report.revision: stored}
                else:
                    revs[report.revision] = stored
                loc, c = report.location, report.casualties
                rows.append((
                    pk, report.source, report.id, report.revision, report.kind, report.status,
                    occurred, at_now, loc.lat if loc else None, loc.lon if loc else None,
                    report.given_region, report.region, c.killed, c.injured, c.trapped,
                    c.rescued, report.notes, key_name, rules_version, incident,
                ))  # fmt: skip
                group_ids = []
                for target in targets:
                    g = groups.get((target.route_id, target.labels))
                    if g is None:
                        g = groups[target.route_id, target.labels] = self._open_group(target, now)
                    elif now > g.last_now:
                        g.last_now = now
                    group_ids.append(g.id)
                    joins.append((g.id, pk, at_now))
                results.append(SaveResult("created", stored, tuple(group_ids), merged))
        sql.insert_many("incidents", INCIDENT_INSERT_COLUMNS, self._incident_rows)
        self._incident_rows = []
        sql.insert_many("reports", REPORT_INSERT_COLUMNS, rows)
        for g in groups.values():
            self._write_group(g, requests[0].rules_version)
        sql.insert_many("group_reports", JOIN_INSERT_COLUMNS, joins)
        return out

    def _incident(
        self, report: Report, latest: Report | None, occurred: Any, at_now: Any
    ) -> tuple[str, bool]:
        """The incident a new revision belongs to, and whether it joined another report's."""
        if report.incident is not None:
            found = report.incident in self.made or bool(
                self.sql.rows(INCIDENT_EXISTS, {"id": report.incident})
            )
            if not found:
                return self._make(report, report.incident, occurred, at_now, named=True), False
            self._join(report.incident, report.source)
            return report.incident, True
        if latest is not None and latest.incident is not None:
            return latest.incident, False  # a revision stays with its incident
        if report.location is not None:
            candidates = self._committed_candidates(report)
            if self.joined and candidates:
                candidates = [
                    c for c in candidates if report.source not in self.joined.get(c.id, ())
                ]
            if self.fresh:
                candidates = candidates + self.fresh.candidates(report)
            chosen = pick(report, candidates, self.merge) if candidates else None
            if chosen is not None:
                self._join(chosen, report.source)
                return chosen, True
        self._count += 1
        incident_id = f"{self._id_prefix}{self._count:08x}"
        return self._make(report, incident_id, occurred, at_now, named=False), False

    def _make(
        self, report: Report, incident_id: str, occurred: Any, at_now: Any, *, named: bool
    ) -> str:
        loc = report.location
        self._incident_rows.append((
            incident_id, report.kind, report.region, loc.lat if loc else None,
            loc.lon if loc else None, occurred, at_now, named,
        ))  # fmt: skip
        self.made.add(incident_id)
        if loc is not None:
            self.fresh.add(incident_id, report.kind, loc, report.occurred_at, (report.source,))
        return incident_id

    def _join(self, incident_id: str, source: str) -> None:
        if incident_id in self.fresh:
            self.fresh.join(incident_id, source)
        elif incident_id not in self.made:
            self.joined.setdefault(incident_id, set()).add(source)

    def _committed_candidates(self, report: Report) -> list[Candidate]:
        if self.memory is not None and self.memory.covers(report):
            return self.memory.candidates(report)
        assert report.location is not None
        sql = self.sql
        lat0, lat1, lon0, lon1 = bounding_box(report.location, self.merge.radius_m)
        rows = sql.rows(
            CANDIDATES,
            {
                "kind": report.kind,
                "t0": sql.at(report.occurred_at - self.merge.window),
                "t1": sql.at(report.occurred_at + self.merge.window),
                "lat0": lat0,
                "lat1": lat1,
                "lon0": lon0,
                "lon1": lon1,
                "source": report.source,
            },
        )
        if not rows:
            return []
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
                Candidate(iid, report.kind, Point(lat, lon), at, tuple(sorted(sources[iid])))
            )
        return candidates

    def _open_group(self, target: GroupTarget, now: datetime) -> _Group:
        rows = self.sql.rows(
            OPEN_GROUP, {"route_id": target.route_id, "group_key": target.group_key}
        )
        if not rows:
            return _Group(secrets.token_hex(16), True, target, now, now)
        group_id, *existing = rows[0]
        return _Group(str(group_id), False, target, now, now, tuple(existing))

    def _write_group(self, g: _Group, rules_version: str) -> None:
        """Open the group, or set its timer: once per transaction, by its first report
        (later ones would find it pending with the same due time)."""
        sql, t, timing = self.sql, g.target, g.target.timing
        if g.new:
            sql.run(
                INSERT_GROUP,
                {
                    "id": g.id,
                    "route_id": t.route_id,
                    "group_key": t.group_key,
                    "labels": json.dumps([list(kv) for kv in t.labels], ensure_ascii=False),
                    "receiver": t.receiver,
                    "created_at": sql.at(g.first_now),
                    "next_flush_at": sql.at(first_flush(g.first_now, timing)),
                    "pending": True,
                    "group_interval_s": timing.group_interval.total_seconds(),
                    "rules_version": rules_version,
                    "last_report_at": sql.at(g.last_now),
                    "repeat_interval_s": timing.repeat_interval.total_seconds(),
                    "close_after_s": timing.close_after.total_seconds(),
                    "escalate_after_s": timing.escalate_after.total_seconds()
                    if timing.escalate_after is not None
                    else None,
                },
            )
            return
        assert g.existing is not None
        pending, next_flush_at, last_flush_at = g.existing
        due = next_flush_after_report(
            now=g.first_now,
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
                "receiver": t.receiver,
                "id": g.id,
                "now": sql.at(g.last_now),
                "repeat_interval_s": timing.repeat_interval.total_seconds(),
                "close_after_s": timing.close_after.total_seconds(),
            },
        )


class Sql:
    """Runs the statements above on one connection inside its transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        # SQLAlchemy began the transaction (BEGIN IMMEDIATE) on this same sqlite3 connection.
        dbapi = conn.connection.driver_connection
        self.cursor = dbapi.cursor() if self.sqlite else None  # type: ignore[union-attr]
        self.max_variables = (
            dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
            if self.sqlite
            else 0
        )

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

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Rows of `columns`, in order, with one executemany."""
        if not rows:
            return
        if self.cursor is not None:
            # Many rows to a statement: SQLite lets go of the GIL once per statement it
            # runs, and a writer that takes it back once a row waits on the event loop's
            # thread each time (up to the 5 ms switch interval) when it is busy.
            cols = tuple(columns)
            most = max(1, min(MAX_ROWS_PER_INSERT, self.max_variables // len(cols)))
            start = 0
            while start < len(rows):
                left = len(rows) - start
                n = most if left >= most else 1 << (left.bit_length() - 1)
                chunk = rows[start : start + n]
                self.cursor.execute(
                    _positional_insert(table, cols, n), [v for row in chunk for v in row]
                )
                start += n
        else:
            self.conn.execute(
                _clause(_named_insert(table, tuple(columns))),
                [dict(zip(columns, row, strict=True)) for row in rows],
            )

    def revisions(self, keys: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
        """Rows of REPORT_COLUMNS: every revision held of these (source, id) pairs."""
        if not keys:
            return []
        if self.sqlite:
            return self.rows(REVISIONS["sqlite"], {"keys": json.dumps(keys)})
        sources, ids = [k[0] for k in keys], [k[1] for k in keys]
        return self.rows(REVISIONS["postgresql"], {"sources": sources, "ids": ids})

    def next_pks(self, n: int) -> Iterator[int]:
        """Row ids for up to `n` new reports: on SQLite the writer holds the write lock,
        so the next ids are its own; elsewhere they come from the table's sequence."""
        if self.sqlite:
            ((top,),) = self.rows(NEXT_PKS["sqlite"], {})
            return iter(range(int(top) + 1, int(top) + 1 + n))
        return iter([int(pk) for (pk,) in self.rows(NEXT_PKS["postgresql"], {"n": n})])

    def data_version(self) -> int:
        """SQLite's count of commits by other connections (PRAGMA data_version)."""
        assert self.cursor is not None
        ((version,),) = list(self.cursor.execute("PRAGMA data_version"))
        return int(version)

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


@lru_cache(maxsize=64)
def _positional_insert(table: str, columns: tuple[str, ...], rows: int) -> str:
    marks = "(" + ", ".join("?" for _ in columns) + ")"
    values = ", ".join(marks for _ in range(rows))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"  # noqa: S608


@lru_cache(maxsize=16)
def _named_insert(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join(f":{c}" for c in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


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
