"""What the operators' desk reads: incidents for the map and one incident's panel, the open
groups with what the desk shows of each, and the reports a rules diff replays.

Reads only, each in one transaction (off the event loop on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    func,
    select,
)

from dispatcher.model import Point, Report
from dispatcher.store import dbapi, report_row
from dispatcher.store.mappers import _group_from_row
from dispatcher.store.report_row import StoredReport
from dispatcher.store.rows import (
    Ack,
    IncidentRow,
    OpenGroup,
)
from dispatcher.store.submit import Room
from dispatcher.store.tables import (
    alert_groups,
    group_acks,
    group_reports,
    group_updates,
    incidents,
    reports,
)


class DeskRoom(Room):
    """The desk's reads (`ReportStore` and `GroupStore` carry them)."""

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        """One incident with every revision of every report that joined it (or an incident
        merged into it); an incident merged into another is that other one."""
        return await self._read(partial(_get_incident, incident_id=incident_id))

    async def map_incidents(
        self,
        *,
        since: datetime,
        regions: frozenset[str] | None,
        kind: str | None,
        limit: int,
    ) -> list[IncidentRow]:
        """Incidents since `since`, newest first, each with every revision of its reports
        (for the desk's map: read in one transaction, off the event loop on SQLite)."""
        return await self._read(
            partial(_map_incidents, since=since, regions=regions, kind=kind, limit=limit)
        )

    async def open_groups(self, limit: int = 500) -> list[OpenGroup]:
        """Open alert groups, latest report first, with what the desk shows of each: when
        it last told its leaders, who acknowledged, its incidents' regions and kinds."""
        return await self._read(partial(_open_groups, limit=limit))

    async def reports_received_since(self, since: datetime, limit: int) -> list[Report]:
        """The newest revision of each report received since `since` (a rules diff's
        replay), oldest first."""

        def read(conn: Connection) -> list[Report]:
            rows = conn.execute(
                select(reports)
                .where(reports.c.received_at >= since)
                .order_by(reports.c.pk.desc())
                .limit(limit)
            ).all()
            newest: dict[tuple[str, str], Report] = {}
            for r in rows:
                newest.setdefault((r.source, r.ext_id), report_row.stored(r).report)
            return list(reversed(newest.values()))

        return await self._read(read)


def _get_incident(conn: Connection, *, incident_id: str) -> IncidentRow | None:
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    for _ in range(10):  # an incident merged into another: that one (no chain is longer)
        if row is None or row.merged_into is None:
            break
        row = conn.execute(select(incidents).where(incidents.c.id == row.merged_into)).first()
    return None if row is None else _with_reports(conn, [row])[0]


def _map_incidents(
    conn: Connection,
    *,
    since: datetime,
    regions: frozenset[str] | None,
    kind: str | None,
    limit: int,
) -> list[IncidentRow]:
    sql = dbapi.on(conn)
    where = ""
    params: dict[str, Any] = {"since": sql.at(since), "limit": limit}
    if kind is not None:
        where += " AND kind = :kind"
        params["kind"] = kind
    if regions is not None:
        marks, named = _in("r", sorted(regions))
        where += f" AND region IN {marks}"
        params.update(named)
    heads = []
    for iid, k, region, lat, lon, occurred_at, is_named in sql.rows(
        MAP_INCIDENTS.format(where=where), params
    ):
        occurred = sql.time(occurred_at)
        assert occurred is not None
        heads.append(_IncidentHead(iid, k, region, lat, lon, occurred, bool(is_named)))
    return _with_reports(conn, heads)


def _open_groups(conn: Connection, *, limit: int) -> list[OpenGroup]:
    groups = [
        _group_from_row(r)
        for r in conn.execute(
            select(alert_groups)
            .where(alert_groups.c.closed_at.is_(None))
            .order_by(alert_groups.c.last_report_at.desc(), alert_groups.c.id)
            .limit(limit)
        )
    ]
    ids = [g.id for g in groups]
    if not ids:
        return []
    last = dict(
        conn.execute(
            select(group_updates.c.group_id, func.max(group_updates.c.created_at))
            .where(group_updates.c.group_id.in_(ids))
            .group_by(group_updates.c.group_id)
        ).all()
    )
    acks: dict[str, list[Ack]] = {}
    for a in conn.execute(
        select(group_acks).where(group_acks.c.group_id.in_(ids)).order_by(group_acks.c.id)
    ):
        acks.setdefault(a.group_id, []).append(Ack(a.leader_id, a.at, a.responding, a.note))
    seen: dict[str, tuple[set[str], set[str], int]] = {i: (set(), set(), 0) for i in ids}
    for group_id, region, kind, n in conn.execute(
        select(group_reports.c.group_id, reports.c.region, reports.c.kind, func.count())
        .join(reports, reports.c.pk == group_reports.c.report_pk)
        .where(group_reports.c.group_id.in_(ids))
        .group_by(group_reports.c.group_id, reports.c.region, reports.c.kind)
    ):
        regions, kinds, total = seen[group_id]
        regions.add(region)
        kinds.add(kind)
        seen[group_id] = (regions, kinds, total + int(n))
    return [
        OpenGroup(
            group=g,
            last_update_at=_as_utc(last.get(g.id)),
            acks=tuple(acks.get(g.id, ())),
            regions=tuple(sorted(seen[g.id][0])),
            kinds=tuple(sorted(seen[g.id][1])),
            reports=seen[g.id][2],
        )
        for g in groups
    ]


def _as_utc(value: Any) -> datetime | None:
    """A time from an aggregate (which skips the column's type): aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


MAP_INCIDENTS = (
    "SELECT id, kind, region, lat, lon, occurred_at, named FROM incidents "
    "WHERE occurred_at >= :since AND merged_into IS NULL{where} "
    "ORDER BY occurred_at DESC, id DESC LIMIT :limit"
)


class _IncidentHead(NamedTuple):
    id: str
    kind: str
    region: str
    lat: float | None
    lon: float | None
    occurred_at: datetime
    named: bool


def _in(name: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    """`(:name0, :name1, ...)` and its parameters."""
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(f":{p}" for p in params) + ")", params


def _with_reports(conn: Connection, rows: Sequence[Any]) -> list[IncidentRow]:
    """Incident rows with every revision of their reports and of the reports of incidents
    merged into them (as list_incidents), read as plain rows: a surge day's thousands of
    reports cost a fraction of what mapped rows do."""
    sql = dbapi.on(conn)
    members: dict[str, list[StoredReport]] = {row.id: [] for row in rows}
    counted_in = {iid: iid for iid in members}
    ids = list(members)
    for start in range(0, len(ids), 500):
        marks, params = _in("i", ids[start : start + 500])
        merged = sql.rows(f"SELECT id, merged_into FROM incidents WHERE merged_into IN {marks}",  # noqa: S608 - placeholders only
                          params)  # fmt: skip
        counted_in.update({mid: into for mid, into in merged})
    every = list(counted_in)
    for start in range(0, len(every), 500):
        marks, params = _in("i", every[start : start + 500])
        for found in sql.rows(
            f"SELECT {report_row.SELECT_COLUMNS} FROM reports WHERE incident_id IN {marks}",  # noqa: S608 - placeholders only
            params,
        ):
            stored = report_row.stored(found)
            assert stored.report.incident is not None
            members[counted_in[stored.report.incident]].append(stored)
    return [
        IncidentRow(
            id=row.id,
            kind=row.kind,
            region=row.region,
            location=Point(row.lat, row.lon) if row.lat is not None else None,
            occurred_at=row.occurred_at,
            named=row.named,
            reports=tuple(sorted(members[row.id], key=lambda r: r.pk)),
        )
        for row in rows
    ]
