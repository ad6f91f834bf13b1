"""Report writes and reads: storing revisions into their alert groups (through the one write
path, `store/submit.py`), a report's revisions, incidents with their reports.

The decision for each report (new, duplicate, stale, conflicting resend) and the merge into
incidents are made by `report_writer.ReportWriter` in the writer's transaction; this room
submits them and reads what was stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.exc import IntegrityError

from dispatcher.group import GroupTarget
from dispatcher.model import Point, Report
from dispatcher.store import report_row
from dispatcher.store.report_row import StoredReport
from dispatcher.store.rows import (
    IncidentRow,
)
from dispatcher.store.submit import Room
from dispatcher.store.tables import (
    incidents,
    reports,
)
from dispatcher.store.writer_wire import ReportWrite, SaveResult


class ReportRoom(Room):
    """Reports: the `ReportStore` protocol."""

    async def save_reports(
        self,
        items: Sequence[tuple[Report, Sequence[GroupTarget]]],
        *,
        now: datetime,
        key_name: str,
        rules_version: str,
    ) -> list[SaveResult]:
        """Store report revisions and add each to its alert groups, in one transaction.

        The same (source, id, revision) again is a duplicate: nothing changes; with other
        content (`resend.resend_differences`) it is a conflict, and nothing changes either.
        A revision lower than the stored one is stale: nothing changes.
        """
        try:
            return await self.writes.reports(ReportWrite(items, now, key_name, rules_version))
        except IntegrityError:
            # A concurrent request (another connection, on PostgreSQL) stored one of these
            # revisions between our read and our insert: the retry sees it as a duplicate.
            return await self.writes.reports(ReportWrite(items, now, key_name, rules_version))

    async def save_report(
        self,
        report: Report,
        *,
        targets: Sequence[GroupTarget],
        now: datetime,
        key_name: str,
        rules_version: str,
    ) -> SaveResult:
        (result,) = await self.save_reports(
            [(report, targets)], now=now, key_name=key_name, rules_version=rules_version
        )
        return result

    async def report_revisions(self, source: str, ext_id: str) -> list[StoredReport]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(reports)
                .where(reports.c.source == source, reports.c.ext_id == ext_id)
                .order_by(reports.c.revision)
            )
            return [report_row.stored(row) for row in rows]

    async def list_incidents(
        self,
        *,
        regions: frozenset[str] | None,
        kind: str | None,
        since: datetime | None,
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[IncidentRow]:
        """Incidents, newest first, with their reports (those of incidents merged into them
        too); `before` is the last one of the previous page (keyset pagination, stable while
        reports arrive)."""
        query = select(incidents).where(incidents.c.merged_into.is_(None))
        if regions is not None:
            query = query.where(incidents.c.region.in_(sorted(regions)))
        if kind is not None:
            query = query.where(incidents.c.kind == kind)
        if since is not None:
            query = query.where(incidents.c.occurred_at >= since)
        if before is not None:
            at, iid = before
            query = query.where(
                (incidents.c.occurred_at < at)
                | ((incidents.c.occurred_at == at) & (incidents.c.id < iid))
            )
        query = query.order_by(incidents.c.occurred_at.desc(), incidents.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            members: dict[str, list[StoredReport]] = {row.id: [] for row in rows}
            if members:
                counted_in = {iid: iid for iid in members}
                for merged in await conn.execute(
                    select(incidents.c.id, incidents.c.merged_into).where(
                        incidents.c.merged_into.in_(list(members))
                    )
                ):
                    counted_in[merged.id] = merged.merged_into
                for r in await conn.execute(
                    select(reports)
                    .where(reports.c.incident_id.in_(list(counted_in)))
                    .order_by(reports.c.pk)
                ):
                    members[counted_in[r.incident_id]].append(report_row.stored(r))
        return [
            IncidentRow(
                id=row.id,
                kind=row.kind,
                region=row.region,
                location=Point(row.lat, row.lon) if row.lat is not None else None,
                occurred_at=row.occurred_at,
                named=row.named,
                reports=tuple(members[row.id]),
            )
            for row in rows
        ]

    async def count_reports(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(reports))).scalar_one())
