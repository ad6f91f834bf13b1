"""The report write path's SQL text, portable between SQLite and PostgreSQL where it can be.

Written out once and run without building SQLAlchemy expressions per row (store/dbapi.py):
a transaction's revisions in one query, the incidents a report may join (on SQLite the
writer's memory answers most of these, store/incident_memory.py), merges, and the alert
groups a report opens or joins. Where the dialects differ the statement is given for each
(`revisions`, `next_pks`). The hand-over of a group to a new receiver is in
store/hand_over.py; a report's columns are store/report_row.py's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from dispatcher.counting import FAMILIES
from dispatcher.store.dbapi import Sql
from dispatcher.store.report_row import COLUMNS, SELECT_COLUMNS

# Incidents considered for a merge by the SQL lookup: the most recent ones of the kind
# nearby. A surge puts many incidents in one square kilometre; a few dozen is still far
# more than a real overlap.
MAX_CANDIDATES = 50
REVISIONS = {
    # Every stored revision of a transaction's (source, id) pairs, in one query.
    "sqlite": (
        f"SELECT {SELECT_COLUMNS} FROM reports WHERE (source, ext_id) IN "  # noqa: S608
        "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:keys))"
    ),
    "postgresql": (
        f"SELECT {SELECT_COLUMNS} FROM reports WHERE (source, ext_id) IN "  # noqa: S608
        "(SELECT * FROM unnest(CAST(:sources AS VARCHAR[]), CAST(:ids AS VARCHAR[])))"
    ),
}
NEXT_PKS = {
    "sqlite": "SELECT coalesce(max(pk), 0) FROM reports",
    "postgresql": (
        "SELECT nextval(pg_get_serial_sequence('reports', 'pk')) FROM generate_series(1, :n)"
    ),
}
REPORT_INSERT_COLUMNS = COLUMNS
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


def revisions(sql: Sql, keys: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
    """Rows of report_row.COLUMNS: every revision held of these (source, id) pairs."""
    if not keys:
        return []
    if sql.sqlite:
        return sql.rows(REVISIONS["sqlite"], {"keys": json.dumps(keys)})
    sources, ids = [k[0] for k in keys], [k[1] for k in keys]
    return sql.rows(REVISIONS["postgresql"], {"sources": sources, "ids": ids})


def next_pks(sql: Sql, n: int) -> Iterator[int]:
    """Row ids for up to `n` new reports: on SQLite the writer holds the write lock, so the
    next ids are its own; elsewhere they come from the table's sequence."""
    if sql.sqlite:
        ((top,),) = sql.rows(NEXT_PKS["sqlite"], {})
        return iter(range(int(top) + 1, int(top) + 1 + n))
    return iter([int(pk) for (pk,) in sql.rows(NEXT_PKS["postgresql"], {"n": n})])
