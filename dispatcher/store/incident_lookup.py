"""The committed incidents a new report may join or absorb, looked up in the table.

On SQLite the writer's memory (store/incident_memory.py) answers for reports of the last
hours; these queries answer for older strikes there, and for every report on PostgreSQL,
where a transaction's reports are looked up together (`look_up_many`). What is chosen from
the candidates is `incidents.pick` and `incidents.absorbs`, pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dispatcher.counting import family, family_kinds
from dispatcher.incidents import Candidate, MergeRule, bounding_box
from dispatcher.model import Point, Report
from dispatcher.store.dbapi import Sql
from dispatcher.store.report_sql import (
    ABSORBABLE,
    CANDIDATES,
    CANDIDATES_MANY,
    MAX_FAMILY,
    SOURCES_OF,
    SOURCES_OF_MANY,
)

# A report by its (source, id, revision).
Key = tuple[str, str, int]


def look_up_many(sql: Sql, merge: MergeRule, new: Iterable[Report]) -> dict[Key, list[Candidate]]:
    """Committed candidates of every located report that names no incident, in two queries
    for the whole transaction (PostgreSQL)."""
    wanted = {
        (r.source, r.id, r.revision): r
        for r in new
        if r.location is not None and r.incident is None
    }
    if not wanted:
        return {}
    keys = list(wanted)
    names = ("n", "kinds", "t0", "t1", "lat0", "lat1", "lon0", "lon1", "far0", "far1",
             "flon0", "flon1", "source")  # fmt: skip
    params: dict[str, list[Any]] = {name: [] for name in names}
    for n, key in enumerate(keys):
        r = wanted[key]
        assert r.location is not None
        near = bounding_box(r.location, merge.radius_m)
        far = bounding_box(r.location, merge.reach_m)
        values = (n, ",".join(family_kinds(r.kind)), r.occurred_at - merge.window,
                  r.occurred_at + merge.window, *near, *far, r.source)  # fmt: skip
        for name, value in zip(names, values, strict=True):
            params[name].append(value)
    rows = sql.rows(CANDIDATES_MANY, params)
    found: dict[Key, list[Candidate]] = {key: [] for key in keys}
    if not rows:
        return found
    sources: dict[str, set[str]] = {row[1]: set() for row in rows}
    for inc, source in sql.rows(SOURCES_OF_MANY, {"ids": list(sources)}):
        sources[inc].add(source)
    for n, *row in rows:
        key = keys[n]
        found[key].append(stored_candidate(sql, wanted[key].kind, row, sources[row[0]]))
    return found


def stored_candidates(sql: Sql, merge: MergeRule, report: Report) -> list[Candidate]:
    """Committed incidents `report` may join, from the table."""
    assert report.location is not None
    lat0, lat1, lon0, lon1 = bounding_box(report.location, merge.radius_m)
    far0, far1, flon0, flon1 = bounding_box(report.location, merge.reach_m)
    rows = sql.rows(
        CANDIDATES,
        {
            **_kinds(report.kind),
            "t0": sql.at(report.occurred_at - merge.window),
            "t1": sql.at(report.occurred_at + merge.window),
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
    sources = _sources_of(sql, [row[0] for row in rows])
    return [stored_candidate(sql, report.kind, row, sources[row[0]]) for row in rows]


def stored_around(
    sql: Sql, merge: MergeRule, report: Report, into: str, sources: set[str]
) -> list[Candidate]:
    """Committed incidents round an own-tier report that no team anchors, with their
    sources; adds the sources of `into` to `sources`."""
    assert report.location is not None
    far0, far1, flon0, flon1 = bounding_box(report.location, merge.reach_m)
    rows = sql.rows(
        ABSORBABLE,
        {
            **_kinds(report.kind),
            "t0": sql.at(report.occurred_at - merge.window),
            "t1": sql.at(report.occurred_at + merge.window),
            "far0": far0,
            "far1": far1,
            "flon0": flon0,
            "flon1": flon1,
            "into": into,
        },
    )
    found = _sources_of(sql, [into, *(row[0] for row in rows)])
    sources.update(found[into])
    return [stored_candidate(sql, report.kind, row, found[row[0]]) for row in rows]


def stored_candidate(sql: Sql, kind: str, row: Sequence[Any], sources: Iterable[str]) -> Candidate:
    """A committed incident from a row of (id, lat, lon, occurred_at, anchored), with its
    sources; `kind`: of the report it was looked up for (the same family)."""
    iid, lat, lon, occurred_at, anchored = row
    at = sql.time(occurred_at)
    assert at is not None
    return Candidate(iid, family(kind), Point(lat, lon), at, tuple(sorted(sources)), bool(anchored))


def _kinds(kind: str) -> dict[str, str]:
    """The kind family's parameters: three, the kind repeated to fill."""
    kinds = family_kinds(kind)
    kinds = kinds + (kinds[0],) * (MAX_FAMILY - len(kinds))
    return {f"kind{n}": k for n, k in enumerate(kinds)}


def _sources_of(sql: Sql, ids: Sequence[str]) -> dict[str, set[str]]:
    """The sources of each of these incidents."""
    found: dict[str, set[str]] = {i: set() for i in ids}
    # Only placeholders are formatted in; the ids are bound.
    marks = ", ".join(f":i{n}" for n in range(len(ids)))
    for inc, source in sql.rows(f"{SOURCES_OF}({marks})", {f"i{n}": i for n, i in enumerate(ids)}):
        found[inc].add(source)
    return found
