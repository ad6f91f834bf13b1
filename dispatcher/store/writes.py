"""The report write path: revisions, incidents and alert groups for each new report.

This is the hottest code in the service (a surge is thousands of reports a second). A
transaction's reports are decided in Python and their rows written together, a few INSERT
statements a table: their revisions are looked up in one query, the incidents they may
join come from an in-memory index on SQLite (`IncidentMemory`) or a query per report on
PostgreSQL, and each alert group they join is read and set once. Its SQL is written out
once, portable between SQLite and PostgreSQL, and run without building SQLAlchemy
expressions per row: on SQLite straight on the sqlite3 connection of the writer's
transaction, elsewhere as cached `text()` statements.

What a SQLite commit costs is mostly the pages it dirties, so every index that rows are
added to grows at one end where it can: incident ids begin with the time, and SQLite keeps
no spatial index of incidents (the writer's memory answers the merge lookup).

Longer than 400 lines, and due a split (issue 16, left for now): dialect SQL, the writer's
wire form, the incident memory and `ReportWriter` are still in this one module.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.exc import IntegrityError

from dispatcher.counting import FAMILIES, family, family_kinds
from dispatcher.group import GroupTarget, Timing, first_flush, next_flush_after_report
from dispatcher.incidents import (
    Candidate,
    IncidentIndex,
    MergeRule,
    absorbs,
    bounding_box,
    pick,
)
from dispatcher.model import Casualties, Point, Report
from dispatcher.resend import Difference, resend_differences

log = logging.getLogger("dispatcher.store")

# Incidents considered for a merge by the SQL lookup: the most recent ones of the kind
# nearby. A surge puts many incidents in one square kilometre; a few dozen is still far
# more than a real overlap.
MAX_CANDIDATES = 50
# The writer's memory holds the incidents that occurred this long before now; a report of
# an older strike looks its incidents up in the table.
MEMORY_HORIZON = timedelta(hours=6)
# Rows in one INSERT statement on SQLite.
MAX_ROWS_PER_INSERT = 512

REPORT_COLUMNS = (
    "pk, source, ext_id, revision, kind, status, occurred_at, received_at, lat, lon, "
    "given_region, region, killed, injured, trapped, rescued, notes, key_name, rules_version, "
    "incident_id, tier, site"
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
                           "named", "merged_into")  # fmt: skip
JOIN_INSERT_COLUMNS = ("group_id", "report_pk", "added_at")
INCIDENT_EXISTS = "SELECT id FROM incidents WHERE id = :id"
# One source reporting twice has seen two events: incidents it already joined are skipped.
# Incidents of the report's kind family (three kinds at most, the kind repeated to fill)
# in the box round its merge circle, or anchored (an own-tier report joined them) in the
# box round its anchor circle.
ANCHORED = "EXISTS (SELECT 1 FROM reports o WHERE o.incident_id = i.id AND o.tier = 'own')"
MAX_FAMILY = 3
assert all(len(kinds) <= MAX_FAMILY for kinds in FAMILIES)
CANDIDATES = (
    f"SELECT i.id, i.lat, i.lon, i.occurred_at, {ANCHORED} FROM incidents i "  # noqa: S608 - constants only
    "WHERE i.kind IN (:kind0, :kind1, :kind2) AND i.occurred_at BETWEEN :t0 AND :t1 "
    "AND i.lat BETWEEN :far0 AND :far1 AND i.lon BETWEEN :flon0 AND :flon1 "
    "AND i.merged_into IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.incident_id = i.id AND r.source = :source) "
    "AND ((i.lat BETWEEN :lat0 AND :lat1 AND i.lon BETWEEN :lon0 AND :lon1) "
    f"OR {ANCHORED}) "
    "ORDER BY i.occurred_at DESC LIMIT " + str(MAX_CANDIDATES)
)
SOURCES_OF = "SELECT DISTINCT incident_id, source FROM reports WHERE incident_id IN "
# PostgreSQL: CANDIDATES for every located report of a transaction in one query (n: the
# report's place in the lists), and the sources of all the incidents found in another.
CANDIDATES_MANY = (
    "SELECT q.n, c.id, c.lat, c.lon, c.occurred_at, c.anchored FROM unnest("  # noqa: S608 - constants only
    "CAST(:n AS INTEGER[]), CAST(:kinds AS VARCHAR[]), CAST(:t0 AS TIMESTAMPTZ[]), "
    "CAST(:t1 AS TIMESTAMPTZ[]), CAST(:lat0 AS FLOAT8[]), CAST(:lat1 AS FLOAT8[]), "
    "CAST(:lon0 AS FLOAT8[]), CAST(:lon1 AS FLOAT8[]), CAST(:far0 AS FLOAT8[]), "
    "CAST(:far1 AS FLOAT8[]), CAST(:flon0 AS FLOAT8[]), CAST(:flon1 AS FLOAT8[]), "
    "CAST(:source AS VARCHAR[])) "
    "AS q(n, kinds, t0, t1, lat0, lat1, lon0, lon1, far0, far1, flon0, flon1, source) "
    "CROSS JOIN LATERAL ("
    f"SELECT i.id, i.lat, i.lon, i.occurred_at, {ANCHORED} AS anchored FROM incidents i "
    "WHERE i.kind = ANY(string_to_array(q.kinds, ',')) AND i.occurred_at BETWEEN q.t0 AND q.t1 "
    "AND i.lat BETWEEN q.far0 AND q.far1 AND i.lon BETWEEN q.flon0 AND q.flon1 "
    "AND i.merged_into IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.incident_id = i.id AND r.source = q.source) "
    "AND ((i.lat BETWEEN q.lat0 AND q.lat1 AND i.lon BETWEEN q.lon0 AND q.lon1) "
    f"OR {ANCHORED}) "
    "ORDER BY i.occurred_at DESC LIMIT " + str(MAX_CANDIDATES) + ") c"
)
SOURCES_OF_MANY = (
    "SELECT DISTINCT incident_id, source FROM reports "
    "WHERE incident_id = ANY(CAST(:ids AS VARCHAR[]))"
)
RECENT_INCIDENTS = (
    "SELECT id, kind, lat, lon, occurred_at FROM incidents "
    "WHERE occurred_at >= :since AND lat IS NOT NULL AND lon IS NOT NULL "
    "AND merged_into IS NULL"
)
RECENT_SOURCES = (
    "SELECT DISTINCT r.incident_id, r.source, r.tier = 'own' FROM incidents i "
    "JOIN reports r ON r.incident_id = i.id "
    "WHERE i.occurred_at >= :since AND i.lat IS NOT NULL AND i.lon IS NOT NULL"
)
# Incidents an own-tier report may gather into its own (`incidents.absorbs` decides): of its
# kind family, in its window and the box round its anchor circle, no team's, not merged.
ABSORBABLE = (
    "SELECT i.id, i.lat, i.lon, i.occurred_at, 0 FROM incidents i "  # noqa: S608 - constants only
    "WHERE i.kind IN (:kind0, :kind1, :kind2) AND i.occurred_at BETWEEN :t0 AND :t1 "
    "AND i.lat BETWEEN :far0 AND :far1 AND i.lon BETWEEN :flon0 AND :flon1 "
    f"AND i.merged_into IS NULL AND i.id != :into AND NOT {ANCHORED} "
    "ORDER BY i.occurred_at DESC LIMIT " + str(MAX_CANDIDATES)
)
MERGE_INCIDENT = "UPDATE incidents SET merged_into = :into WHERE id = :id"
# The open groups holding reports of a merged incident count them again at their next flush.
RECOUNT_GROUPS = (
    "UPDATE alert_groups SET recount = recount + 1 WHERE closed_at IS NULL AND id IN "
    "(SELECT g.group_id FROM group_reports g JOIN reports r ON r.pk = g.report_pk "
    "WHERE r.incident_id = :id)"
)
# A report as counted: in the incident its own was merged into, if it was.
COUNTED_INCIDENT = (
    "coalesce((SELECT m.merged_into FROM incidents m WHERE m.id = reports.incident_id), "
    "reports.incident_id)"
)
COUNTED_REPORT_COLUMNS = REPORT_COLUMNS.replace(" incident_id,", f" {COUNTED_INCIDENT},")
assert COUNTED_REPORT_COLUMNS != REPORT_COLUMNS

OPEN_GROUP = (
    "SELECT id, pending, next_flush_at, last_flush_at, receiver FROM alert_groups "
    "WHERE route_id = :route_id AND group_key = :group_key AND closed_at IS NULL"
)
INSERT_GROUP = (
    "INSERT INTO alert_groups (id, route_id, group_key, labels, receiver, created_at, "
    "next_flush_at, last_flush_at, pending, seq, group_interval_s, rules_version, "
    "last_report_at, repeat_interval_s, close_after_s, escalate_after_s) VALUES "
    "(:id, :route_id, :group_key, :labels, :receiver, :created_at, :next_flush_at, NULL, "
    ":pending, 0, :group_interval_s, :rules_version, :last_report_at, :repeat_interval_s, "
    ":close_after_s, :escalate_after_s) "
    # Another transaction opened the group first (PostgreSQL): this one joins that group.
    "ON CONFLICT (route_id, group_key) WHERE closed_at IS NULL DO NOTHING"
)
TOUCH_GROUP = (
    "UPDATE alert_groups SET pending = :pending, next_flush_at = :next_flush_at, "
    "last_report_at = :now, repeat_interval_s = :repeat_interval_s, "
    "close_after_s = :close_after_s WHERE id = :id"
)
# A group's receiver is part of what it is (as in Alertmanager). When the rules give its
# route another receiver, the open group is closed without a word to the old receiver (no
# closing update; its pushes not yet sent are superseded) and a new group takes over every
# report it holds, as new: its first update, after the route's group_wait, tells the new
# receiver the whole current state. The close is conditional, so of two transactions
# handing one group over only one opens its successor; the other joins that one.
CLOSE_HANDED_OVER = (
    "UPDATE alert_groups SET closed_at = :now, pending = :pending, next_flush_at = NULL, "
    "closed_reason = :reason, handed_over_to = :to WHERE id = :id AND closed_at IS NULL"
)
INSERT_SUCCESSOR = (
    "INSERT INTO alert_groups (id, route_id, group_key, labels, receiver, created_at, "
    "next_flush_at, last_flush_at, pending, seq, group_interval_s, rules_version, "
    "last_report_at, repeat_interval_s, close_after_s, escalate_after_s, took_over_from) "
    "VALUES (:id, :route_id, :group_key, :labels, :receiver, :created_at, :next_flush_at, "
    "NULL, :pending, 0, :group_interval_s, :rules_version, :last_report_at, "
    ":repeat_interval_s, :close_after_s, :escalate_after_s, :took_over_from) "
    "ON CONFLICT (route_id, group_key) WHERE closed_at IS NULL DO NOTHING"
)
COPY_GROUP_REPORTS = (
    "INSERT INTO group_reports (group_id, report_pk, added_at) "
    "SELECT :new, report_pk, added_at FROM group_reports WHERE group_id = :old"
)
SUPERSEDE_HANDED_OVER = (
    "UPDATE notifications SET status = 'superseded', last_error = :reason, "
    "claimed_until = NULL WHERE group_id = :old AND status = 'pending'"
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
    outcome: Literal["created", "duplicate", "stale", "conflict"]
    # The new row, the one already held (duplicate, conflict), or (stale) the newest one.
    stored: StoredReport
    group_ids: tuple[str, ...] = ()
    merged: bool = False  # joined an incident another report had opened
    # conflict: the fields the resend gives otherwise, and the newest revision held
    differences: tuple[Difference, ...] = ()
    newest: int = 0


@dataclass(frozen=True, slots=True)
class ReportWrite:
    """The reports of one API request, saved in order within a transaction."""

    items: Sequence[tuple[Report, Sequence[GroupTarget]]]
    now: datetime
    key_name: str
    rules_version: str


# --- the wire form of report writes (to the SQLite writer process and back) ----------
# Plain tuples: pickling dataclasses and named tuples cost more than deciding the reports.

_CREATED, _DUPLICATE, _STALE, _CONFLICT = 0, 1, 2, 3


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    """A time as whole microseconds since 1970: pickling a datetime with its zone cost
    more than everything else a report's wire form holds."""
    return (at - _EPOCH) // _MICROSECOND


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _seconds(span: timedelta | None) -> float | None:
    return span.total_seconds() if span is not None else None


def _span(seconds: float | None) -> timedelta | None:
    return timedelta(seconds=seconds) if seconds is not None else None


def _flat(r: Report) -> tuple[Any, ...]:
    c, loc = r.casualties, r.location
    return (
        r.source, r.id, r.kind, _micros(r.occurred_at), r.region, c.killed, c.injured, c.trapped,
        c.rescued, r.status, r.revision, loc.lat if loc else None, loc.lon if loc else None,
        r.given_region, r.notes, r.incident, r.tier, r.site,
    )  # fmt: skip


_FLAT = 18  # fields of a report's wire form; its group targets follow


def _report(f: Sequence[Any]) -> Report:
    (source, rid, kind, occurred_at, region, killed, injured, trapped, rescued, status,
     revision, lat, lon, given_region, notes, incident, tier, site) = f[:_FLAT]  # fmt: skip
    casualties = Casualties(killed, injured, trapped, rescued)
    return Report(
        source, rid, kind, _time(occurred_at), region, casualties, status, revision,
        Point(lat, lon) if lat is not None else None, given_region, notes, incident, tier, site,
    )  # fmt: skip


def encode_write(w: ReportWrite) -> tuple[Any, ...]:
    """A report write as plain values; each distinct group target is sent once."""
    numbers: dict[int, int] = {}
    targets: list[GroupTarget] = []
    items = []
    for report, wanted in w.items:
        refs = []
        for target in wanted:
            n = numbers.get(id(target))
            if n is None:
                n = numbers[id(target)] = len(targets)
                targets.append(target)
            refs.append(n)
        items.append((*_flat(report), tuple(refs)))
    table = [(t.route_id, t.labels, t.receiver, *map(_seconds, t.timing)) for t in targets]
    return items, table, _micros(w.now), w.key_name, w.rules_version


def decode_write(
    data: tuple[Any, ...], known: dict[tuple[Any, ...], GroupTarget] | None = None
) -> ReportWrite:
    """A report write from its wire form; `known` remembers decoded targets across calls."""
    items, table, now, key_name, rules_version = data
    known = {} if known is None else known
    targets = []
    for wire in table:
        target = known.get(wire)
        if target is None:
            route_id, labels, receiver, wait, interval, repeat, close, escalate = wire
            timing = Timing(
                timedelta(seconds=wait), timedelta(seconds=interval),
                timedelta(seconds=repeat), timedelta(seconds=close), _span(escalate),
            )  # fmt: skip
            if len(known) > 10_000:
                known.clear()
            target = known[wire] = GroupTarget(route_id, labels, receiver, timing)
        targets.append(target)
    return ReportWrite(
        [(_report(f), [targets[n] for n in f[_FLAT]]) for f in items],
        _time(now),
        key_name,
        rules_version,
    )


def _stored_candidate(sql: Sql, kind: str, row: Sequence[Any], sources: Iterable[str]) -> Candidate:
    """A committed incident from a row of (id, lat, lon, occurred_at, anchored), with its
    sources; `kind`: of the report it was looked up for (the same family)."""
    iid, lat, lon, occurred_at, anchored = row
    at = sql.time(occurred_at)
    assert at is not None
    return Candidate(iid, family(kind), Point(lat, lon), at, tuple(sorted(sources)), bool(anchored))


class GroupRace(IntegrityError):
    """A group another transaction opened was closed before this one could join it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None, Exception(message))


def labels_json(labels: Sequence[tuple[str, str]]) -> str:
    """A group's labels as its `labels` column holds them."""
    return json.dumps([list(kv) for kv in labels], ensure_ascii=False)


def hand_over(
    sql: Sql,
    *,
    old_id: str,
    route_id: str,
    group_key: str,
    labels: str,
    receiver: str,
    timing: Timing,
    now: datetime,
    last_report_at: datetime | None,
    rules_version: str,
) -> str | None:
    """Close the open group `old_id` silently and open its successor for `receiver`, due a
    group_wait from `now`, with every report the old one holds (see CLOSE_HANDED_OVER).
    The successor's id, or None if the old group was closed already (by another
    transaction's hand-over: the caller looks again for the open group)."""
    new_id = secrets.token_hex(16)
    reason = f"receiver changed to {receiver}"
    closed = sql.count(
        CLOSE_HANDED_OVER,
        {"id": old_id, "now": sql.at(now), "pending": False, "reason": reason, "to": new_id},
    )
    if not closed:
        return None
    opened = sql.count(
        INSERT_SUCCESSOR,
        {
            "id": new_id,
            "route_id": route_id,
            "group_key": group_key,
            "labels": labels,
            "receiver": receiver,
            "created_at": sql.at(now),
            "next_flush_at": sql.at(first_flush(now, timing)),
            "pending": True,
            "group_interval_s": timing.group_interval.total_seconds(),
            "rules_version": rules_version,
            "last_report_at": sql.at(last_report_at) if last_report_at is not None else None,
            "repeat_interval_s": timing.repeat_interval.total_seconds(),
            "close_after_s": timing.close_after.total_seconds(),
            "escalate_after_s": _seconds(timing.escalate_after),
            "took_over_from": old_id,
        },
    )
    if not opened:  # the old group was open, so no other can be: a broken invariant
        raise GroupRace(f"group {route_id} {group_key} open twice while handing {old_id} over")
    sql.run(COPY_GROUP_REPORTS, {"new": new_id, "old": old_id})
    sql.run(SUPERSEDE_HANDED_OVER, {"old": old_id, "reason": f"{reason}: not sent"})
    log.info("group %s (route %s %s) handed over to %s as group %s", old_id, route_id,
             group_key, receiver, new_id)  # fmt: skip
    return new_id


def _renamed(result: tuple[Any, ...], renamed: Mapping[str, str]) -> tuple[Any, ...]:
    if result[0] != _CREATED:
        return result
    tag, pk, incident, merged, group_ids = result
    return tag, pk, incident, merged, tuple(renamed.get(g, g) for g in group_ids)


# A revision the writer holds: (report, its incident, pk, received_at, key, rules version).
_Held = tuple[Report, str | None, int, datetime, str, str]


def _held_result(tag: int, held: _Held) -> tuple[Any, ...]:
    report, incident, pk, received_at, key_name, rules_version = held
    flat = _flat(report._replace(incident=incident))
    return tag, pk, flat, _micros(received_at), key_name, rules_version


def decode_results(w: ReportWrite, data: Sequence[tuple[Any, ...]]) -> list[SaveResult]:
    """The results of `w` from their wire form (`ReportWriter.save_wire`): a new report is
    the one sent, with the incident it joined."""
    out = []
    for (report, _), r in zip(w.items, data, strict=True):
        if r[0] == _CREATED:
            _, pk, incident, merged, group_ids = r
            stored = StoredReport(
                report._replace(incident=incident), pk, w.now, w.key_name, w.rules_version
            )
            out.append(SaveResult("created", stored, group_ids, merged))
        else:
            tag, pk, flat, received_at, key_name, rules_version = r[:6]
            stored = StoredReport(_report(flat), pk, _time(received_at), key_name, rules_version)
            if tag == _CONFLICT:
                held = stored.report
                differences = tuple(resend_differences(report, held, held.incident))
                out.append(SaveResult("conflict", stored, differences=differences, newest=r[6]))
            else:
                out.append(SaveResult("duplicate" if tag == _DUPLICATE else "stale", stored))
    return out


def new_incident_prefix() -> str:
    """The first 24 of an incident id's 32 hex digits, one per transaction: milliseconds
    since 1970, then 48 random bits; a count within the transaction follows. Ids that grow
    with time are added at the end of the incidents' index instead of all over it."""
    return f"{time.time_ns() // 1_000_000 & (16**12 - 1):012x}{secrets.token_hex(6)}"


class IncidentMemory:
    """The SQLite writer's `IncidentIndex`, kept equal to the incidents table.

    Only the writer adds incidents on SQLite, and it adds those a transaction makes or joins
    here as it goes (`ReportWriter`); a failed commit makes it read the table again
    (`forget`). Should another connection write to the file (another process), SQLite's
    `data_version` tells, and the index is read from the table again too."""

    def __init__(self, merge: MergeRule) -> None:
        self.merge = merge
        self.index: IncidentIndex | None = None
        self._seen: tuple[int, int] | None = None  # (connection, data_version) of the last look
        self.reloaded = False  # the last sync read the table (another connection wrote)

    def sync(self, sql: Sql, now: datetime) -> IncidentIndex:
        """The index, read again if the table changed behind it; inside a write transaction."""
        seen = (id(sql.conn.connection.driver_connection), sql.data_version())
        index = self.index
        self.reloaded = index is None or seen != self._seen
        if index is None or seen != self._seen:
            if index is not None:
                log.warning("another connection wrote to the database: incidents read again")
            index = self.index = self._load(sql, now - MEMORY_HORIZON)
        elif now - MEMORY_HORIZON - index.since > timedelta(minutes=10):
            index.forget_before(now - MEMORY_HORIZON)
        self._seen = seen
        return index

    def _load(self, sql: Sql, since: datetime) -> IncidentIndex:
        index = IncidentIndex(self.merge, since=since)
        sources: dict[str, set[str]] = {}
        anchored: set[str] = set()
        for incident_id, source, own in sql.rows(RECENT_SOURCES, {"since": sql.at(since)}):
            sources.setdefault(incident_id, set()).add(source)
            if own:
                anchored.add(incident_id)
        for incident_id, kind, lat, lon, occurred_at in sql.rows(
            RECENT_INCIDENTS, {"since": sql.at(since)}
        ):
            at = sql.time(occurred_at)
            assert at is not None
            index.add(
                incident_id, kind, Point(lat, lon), at, sources.get(incident_id, ()),
                incident_id in anchored,
            )  # fmt: skip
        return index

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
    # (pending, next_flush_at, last_flush_at, receiver)
    existing: tuple[Any, ...] | None = None


@dataclass(slots=True)
class ReportWriter:
    """Writes reports within one transaction; one per transaction.

    `save` decides each report in order (duplicate, stale, or a new revision with its
    incident and groups) and then writes the rows of all of them, so a later `save` or any
    other statement in the transaction sees them. Incidents made or joined here go straight
    into the SQLite writer's memory when it holds their time (the writer reads it again
    after a failed commit); the others are kept here until the commit, since the merge
    lookup in SQL cannot see them yet.
    """

    sql: Sql
    merge: MergeRule
    memory: IncidentIndex | None = None  # SQLite: the writer's memory of committed incidents
    # SQLite: open groups as the writer left them, (route, labels) -> (id, pending,
    # next_flush_at, last_flush_at, receiver), kept while nothing else writes to alert
    # groups (a CALL job, such as a hand-over after a rules edit, clears it).
    open_groups: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Any, ...]] | None = None
    fresh: IncidentIndex = field(init=False)  # incidents made here that memory does not hold
    joined: dict[str, set[str]] = field(default_factory=dict)  # committed ones joined, by whom
    made: set[str] = field(default_factory=set)  # ids of the incidents made here
    anchored: set[str] = field(default_factory=set)  # committed ones an own report joined here

    _incident_rows: list[tuple[Any, ...]] = field(default_factory=list)
    # PostgreSQL: committed candidates of the transaction's new reports, looked up at once.
    _looked_up: dict[tuple[str, str, int], list[Candidate]] = field(default_factory=dict)
    _id_prefix: str = field(init=False)
    _count: int = 0

    def __post_init__(self) -> None:
        self.fresh = IncidentIndex(self.merge, since=datetime.min.replace(tzinfo=UTC))
        self._id_prefix = new_incident_prefix()

    def save(self, requests: Sequence[ReportWrite]) -> list[list[SaveResult]]:
        """Each request's results (`save_wire`, decoded)."""
        return [
            decode_results(w, r) for w, r in zip(requests, self.save_wire(requests), strict=True)
        ]

    def save_wire(self, requests: Sequence[ReportWrite]) -> list[list[tuple[Any, ...]]]:
        """Decide and write the reports of `requests`; each request's results in their wire
        form (`decode_results` turns them into `SaveResult`s)."""
        sql = self.sql
        # (source, id) -> revision -> (report, incident, pk, received_at, key, rules version)
        held: dict[tuple[str, str], dict[int, _Held]] = {}
        keys = list({(r.source, r.id): None for w in requests for r, _ in w.items})
        for row in sql.revisions(keys):
            report, pk, received_at, key_name, rules_version = stored_from_row(sql, row)
            entry = (report, report.incident, pk, received_at, key_name, rules_version)
            held.setdefault((report.source, report.id), {})[report.revision] = entry
        if self.memory is None and not sql.sqlite:
            self._look_up(r for w in requests for r, _ in w.items if (r.source, r.id) not in held)
        pks = sql.next_pks(sum(len(w.items) for w in requests))
        rows: list[tuple[Any, ...]] = []
        joins: list[tuple[str, int, Any]] = []
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], _Group] = {}
        out: list[list[tuple[Any, ...]]] = []
        for w in requests:
            now, at_now, key_name, rules_version = w.now, sql.at(w.now), w.key_name, w.rules_version
            results: list[tuple[Any, ...]] = []
            out.append(results)
            for report, targets in w.items:
                key = (report.source, report.id)
                revs = held.get(key)
                latest = None
                if revs is not None:
                    latest = revs[max(revs)]
                    if latest[0].revision >= report.revision:
                        # A retry of a revision we hold (even an old one, delayed by a bad
                        # link) is a duplicate, unless it says something else (a conflict:
                        # a correction is a new revision); an older revision we never saw
                        # is stale.
                        same = revs.get(report.revision)
                        if same is None:
                            results.append(_held_result(_STALE, latest))
                        elif resend_differences(report, same[0], same[1]):
                            newest = latest[0].revision
                            results.append((*_held_result(_CONFLICT, same), newest))
                        else:
                            results.append(_held_result(_DUPLICATE, same))
                        continue
                occurred = sql.at(report.occurred_at)
                incident, merged = self._incident(
                    report, latest[1] if latest else None, occurred, at_now
                )
                pk = next(pks)
                entry = (report, incident, pk, now, key_name, rules_version)
                if revs is None:
                    held[key] = {report.revision: entry}
                else:
                    revs[report.revision] = entry
                loc, c = report.location, report.casualties
                rows.append((
                    pk, report.source, report.id, report.revision, report.kind, report.status,
                    occurred, at_now, loc.lat if loc else None, loc.lon if loc else None,
                    report.given_region, report.region, c.killed, c.injured, c.trapped,
                    c.rescued, report.notes, key_name, rules_version, incident, report.tier,
                    report.site,
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
                results.append((_CREATED, pk, incident, merged, tuple(group_ids)))
        sql.insert_many("incidents", INCIDENT_INSERT_COLUMNS, self._incident_rows)
        self._incident_rows = []
        sql.insert_many("reports", REPORT_INSERT_COLUMNS, rows)
        # In one order in every transaction: on PostgreSQL concurrent ones then wait for
        # each other's groups instead of deadlocking on them.
        renamed = {}
        for _, g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[1].target.group_key)):
            opened_as = g.id
            self._write_group(g, requests[0].rules_version)
            if g.id != opened_as:
                renamed[opened_as] = g.id
        if renamed:
            joins = [(renamed.get(g, g), pk, at) for g, pk, at in joins]
            for results in out:
                results[:] = [_renamed(r, renamed) for r in results]
        sql.insert_many("group_reports", JOIN_INSERT_COLUMNS, joins)
        return out

    def _incident(
        self, report: Report, latest: str | None, occurred: Any, at_now: Any
    ) -> tuple[str, bool]:
        """The incident a new revision belongs to, and whether it joined another report's."""
        if report.incident is not None:
            found = report.incident in self.made or bool(
                self.sql.rows(INCIDENT_EXISTS, {"id": report.incident})
            )
            if not found:
                return self._make(report, report.incident, occurred, at_now, named=True), False
            self._join(report.incident, report)
            return report.incident, True
        if latest is not None:
            return latest, False  # a revision stays with its incident
        if report.location is not None:
            memory = self.memory
            if memory is not None and memory.covers(report):
                # The writer's memory holds this transaction's incidents too (see `_make`).
                candidates = memory.candidates(report)
            else:
                candidates = self._stored_candidates(report)
                if self.joined and candidates:
                    candidates = [
                        c._replace(anchored=c.anchored or c.id in self.anchored)
                        for c in candidates
                        if report.source not in self.joined.get(c.id, ())
                    ]
                if memory is not None and self.made:
                    candidates += [c for c in memory.candidates(report) if c.id in self.made]
                if self.fresh:
                    candidates = candidates + self.fresh.candidates(report)
            chosen = pick(report, candidates, self.merge) if candidates else None
            if chosen is not None:
                self._join(chosen, report)
                if report.tier == "own":
                    self._absorb(report, chosen)
                return chosen, True
        self._count += 1
        incident_id = f"{self._id_prefix}{self._count:08x}"
        made = self._make(report, incident_id, occurred, at_now, named=False)
        if report.tier == "own" and report.location is not None:
            self._absorb(report, made)
        return made, False

    def _absorb(self, report: Report, into: str) -> None:
        """Merge into `into` the incidents an own-tier report gathers (`absorbs`): observers
        who reported first, from where they stood, made them apart. Their reports keep
        their incident; reads count them in `into` (COUNTED_INCIDENT)."""
        memory = self.memory
        sources: set[str] = set(self.joined.get(into, ()))
        if memory is not None and memory.covers(report):
            around = memory.around(report)
            sources.update(memory.sources_of(into) or ())
        else:
            around = self._stored_around(report, into, sources)
            if memory is not None and self.made:
                around += [c for c in memory.around(report) if c.id in self.made]
                sources.update(memory.sources_of(into) or ())
        if self.fresh:
            around += self.fresh.around(report)
            sources.update(self.fresh.sources_of(into) or ())
        if self.joined:
            # Committed incidents as this transaction left them: joined by more sources,
            # perhaps by one of our teams.
            around = [
                c._replace(
                    sources=tuple(sorted({*c.sources, *self.joined[c.id]})),
                    anchored=c.anchored or c.id in self.anchored,
                )
                if c.id in self.joined
                else c
                for c in around
            ]
        for absorbed in absorbs(report, into, sources, around, self.merge):
            log.info("incident %s merged into %s, which our team %s reported between them",
                     absorbed, into, report.source)  # fmt: skip
            if absorbed in self.made:
                self._incident_rows = [
                    (*row[:-1], into) if row[0] == absorbed else row for row in self._incident_rows
                ]
            else:
                self.sql.run(MERGE_INCIDENT, {"into": into, "id": absorbed})
                self.sql.run(RECOUNT_GROUPS, {"id": absorbed})
            self.fresh.remove(absorbed)
            if memory is not None:
                memory.remove(absorbed)

    def _stored_around(self, report: Report, into: str, sources: set[str]) -> list[Candidate]:
        """Committed incidents round an own-tier report that no team anchors, with their
        sources; adds the sources of `into` to `sources`."""
        assert report.location is not None
        sql = self.sql
        far0, far1, flon0, flon1 = bounding_box(report.location, self.merge.reach_m)
        kinds = family_kinds(report.kind)
        kinds = kinds + (kinds[0],) * (MAX_FAMILY - len(kinds))
        rows = sql.rows(
            ABSORBABLE,
            {
                **{f"kind{n}": k for n, k in enumerate(kinds)},
                "t0": sql.at(report.occurred_at - self.merge.window),
                "t1": sql.at(report.occurred_at + self.merge.window),
                "far0": far0,
                "far1": far1,
                "flon0": flon0,
                "flon1": flon1,
                "into": into,
            },
        )
        ids = [into, *(row[0] for row in rows)]
        found: dict[str, set[str]] = {i: set() for i in ids}
        marks = ", ".join(f":i{n}" for n in range(len(ids)))
        for inc, source in sql.rows(
            f"{SOURCES_OF}({marks})", {f"i{n}": i for n, i in enumerate(ids)}
        ):
            found[inc].add(source)
        sources.update(found[into])
        return [_stored_candidate(sql, report.kind, row, found[row[0]]) for row in rows]

    def _make(
        self, report: Report, incident_id: str, occurred: Any, at_now: Any, *, named: bool
    ) -> str:
        loc = report.location
        self._incident_rows.append((
            incident_id, report.kind, report.region, loc.lat if loc else None,
            loc.lon if loc else None, occurred, at_now, named, None,
        ))  # fmt: skip
        self.made.add(incident_id)
        if loc is not None:
            # Straight into the writer's memory where it holds that time: a failed commit
            # makes the writer read it again from the table (`IncidentMemory.forget`).
            memory = self.memory
            index = self.fresh if memory is None or report.occurred_at < memory.since else memory
            index.add(
                incident_id, report.kind, loc, report.occurred_at, (report.source,),
                report.tier == "own",
            )  # fmt: skip
        return incident_id

    def _join(self, incident_id: str, report: Report) -> None:
        source, anchors = report.source, report.tier == "own"
        if incident_id in self.fresh:
            self.fresh.join(incident_id, source, anchors=anchors)
        elif incident_id not in self.made:
            self.joined.setdefault(incident_id, set()).add(source)
            if anchors:
                self.anchored.add(incident_id)
        if self.memory is not None:
            self.memory.join(incident_id, source, anchors=anchors)

    def _look_up(self, new: Iterable[Report]) -> None:
        """Committed candidates of every located report that names no incident, in two
        queries for the whole transaction (`_stored_candidates` then answers from them)."""
        wanted = {
            (r.source, r.id, r.revision): r
            for r in new
            if r.location is not None and r.incident is None
        }
        if not wanted:
            return
        keys = list(wanted)
        names = ("n", "kinds", "t0", "t1", "lat0", "lat1", "lon0", "lon1", "far0", "far1",
                 "flon0", "flon1", "source")  # fmt: skip
        params: dict[str, list[Any]] = {name: [] for name in names}
        for n, key in enumerate(keys):
            r = wanted[key]
            assert r.location is not None
            near = bounding_box(r.location, self.merge.radius_m)
            far = bounding_box(r.location, self.merge.reach_m)
            values = (n, ",".join(family_kinds(r.kind)), r.occurred_at - self.merge.window,
                      r.occurred_at + self.merge.window, *near, *far, r.source)  # fmt: skip
            for name, value in zip(names, values, strict=True):
                params[name].append(value)
        rows = self.sql.rows(CANDIDATES_MANY, params)
        self._looked_up = {key: [] for key in keys}
        if not rows:
            return
        sources: dict[str, set[str]] = {row[1]: set() for row in rows}
        for inc, source in self.sql.rows(SOURCES_OF_MANY, {"ids": list(sources)}):
            sources[inc].add(source)
        for n, *row in rows:
            key = keys[n]
            self._looked_up[key].append(
                _stored_candidate(self.sql, wanted[key].kind, row, sources[row[0]])
            )

    def _stored_candidates(self, report: Report) -> list[Candidate]:
        """Committed incidents the report may join, from the table (a report older than
        the writer's memory, or PostgreSQL)."""
        assert report.location is not None
        looked_up = self._looked_up.get((report.source, report.id, report.revision))
        if looked_up is not None:
            return list(looked_up)
        sql = self.sql
        lat0, lat1, lon0, lon1 = bounding_box(report.location, self.merge.radius_m)
        far0, far1, flon0, flon1 = bounding_box(report.location, self.merge.reach_m)
        kinds = family_kinds(report.kind)
        kinds = kinds + (kinds[0],) * (MAX_FAMILY - len(kinds))
        rows = sql.rows(
            CANDIDATES,
            {
                **{f"kind{n}": k for n, k in enumerate(kinds)},
                "t0": sql.at(report.occurred_at - self.merge.window),
                "t1": sql.at(report.occurred_at + self.merge.window),
                "lat0": lat0,
                "lat1": lat1,
                "lon0": lon0,
                "lon1": lon1,
                "far0": far0,
                "far1": far1,
                "flon0": flon0,
                "flon1": flon1,
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
        return [_stored_candidate(sql, report.kind, row, sources[row[0]]) for row in rows]

    def _open_group(self, target: GroupTarget, now: datetime) -> _Group:
        known = self.open_groups.get((target.route_id, target.labels)) if self.open_groups else None
        if known is not None:
            group_id, *existing = known
            return _Group(group_id, False, target, now, now, tuple(existing))
        rows = self.sql.rows(
            OPEN_GROUP, {"route_id": target.route_id, "group_key": target.group_key}
        )
        if not rows:
            return _Group(secrets.token_hex(16), True, target, now, now)
        group_id, *existing = rows[0]
        return _Group(str(group_id), False, target, now, now, tuple(existing))

    def _write_group(self, g: _Group, rules_version: str) -> None:
        """Open the group, hand it over to the target's receiver, or set its timer: once
        per transaction, by its first report (later ones would find it pending with the
        same due time)."""
        sql, t, timing = self.sql, g.target, g.target.timing
        for _ in range(3):
            if g.new:
                inserted = sql.count(
                    INSERT_GROUP,
                    {
                        "id": g.id,
                        "route_id": t.route_id,
                        "group_key": t.group_key,
                        "labels": labels_json(t.labels),
                        "receiver": t.receiver,
                        "created_at": sql.at(g.first_now),
                        "next_flush_at": sql.at(first_flush(g.first_now, timing)),
                        "pending": True,
                        "group_interval_s": timing.group_interval.total_seconds(),
                        "rules_version": rules_version,
                        "last_report_at": sql.at(g.last_now),
                        "repeat_interval_s": timing.repeat_interval.total_seconds(),
                        "close_after_s": timing.close_after.total_seconds(),
                        "escalate_after_s": _seconds(timing.escalate_after),
                    },
                )
                if inserted:
                    self._remember(g, sql.at(first_flush(g.first_now, timing)), None)
                    return
                # Opened by a transaction that committed since this one looked: join it.
            else:
                assert g.existing is not None
                if g.existing[3] == t.receiver:
                    break
                # The rules gave the route another receiver since the group opened.
                successor = hand_over(
                    sql, old_id=g.id, route_id=t.route_id, group_key=t.group_key,
                    labels=labels_json(t.labels), receiver=t.receiver, timing=timing,
                    now=g.first_now, last_report_at=g.last_now, rules_version=rules_version,
                )  # fmt: skip
                if successor is not None:
                    g.id, g.new = successor, True
                    self._remember(g, sql.at(first_flush(g.first_now, timing)), None)
                    return
                # Handed over by a transaction that committed since this one looked.
            rows = sql.rows(OPEN_GROUP, {"route_id": t.route_id, "group_key": t.group_key})
            if not rows:  # and closed again already: a rare race, the request is retried
                raise GroupRace(f"group {t.route_id} {t.group_key} opened and closed meanwhile")
            group_id, *existing = rows[0]
            g.id, g.new, g.existing = str(group_id), False, tuple(existing)
        else:
            raise GroupRace(f"group {t.route_id} {t.group_key} changed hands meanwhile")
        assert g.existing is not None
        pending, next_flush_at, last_flush_at, _ = g.existing
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
                "id": g.id,
                "now": sql.at(g.last_now),
                "repeat_interval_s": timing.repeat_interval.total_seconds(),
                "close_after_s": timing.close_after.total_seconds(),
            },
        )
        self._remember(g, sql.at(due), last_flush_at)

    def _remember(self, g: _Group, next_flush_at: Any, last_flush_at: Any) -> None:
        if self.open_groups is not None:
            key = (g.target.route_id, g.target.labels)
            self.open_groups[key] = (g.id, True, next_flush_at, last_flush_at, g.target.receiver)


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

    def count(self, sql: str, params: dict[str, Any]) -> int:
        """Run a statement; how many rows it wrote."""
        if self.cursor is not None:
            return int(self.cursor.execute(sql, params).rowcount)
        return int(self.conn.execute(_clause(sql), params).rowcount)

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
        """Rows of `columns`, in order: on SQLite 512 to a statement, the rest with one
        executemany (for thousands of rows a statement of many rows costs half as much a
        row; for a few it costs more)."""
        if not rows:
            return
        if self.cursor is not None:
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
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def stored_from_row(sql: Sql, row: tuple[Any, ...]) -> tuple[Report, int, datetime, str, str]:
    """A row of REPORT_COLUMNS as (report, pk, received_at, key_name, rules_version)."""
    (pk, source, ext_id, revision, kind, status, occurred_at, received_at, lat, lon,
     given_region, region, killed, injured, trapped, rescued, notes, key_name, rules_version,
     incident_id, tier, site) = row  # fmt: skip
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
        tier=tier,
        site=site,
        received_at=received,
    )
    return report, int(pk), received, key_name, rules_version
