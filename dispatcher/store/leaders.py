"""What a leader's app reads: the open groups a leader receives, each with its last update,
its newest incidents (with the group's own reports of each) and its acknowledgements.

Part of the groups' room (`GroupStore.leader_groups`); a read only, apart from the flush's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    Connection,
    and_,
    func,
    or_,
    select,
)

from dispatcher.model import Point
from dispatcher.store import report_row
from dispatcher.store.flush_rows import _acks, _newest_update
from dispatcher.store.mappers import _group_from_row
from dispatcher.store.report_row import StoredReport
from dispatcher.store.rows import (
    IncidentRow,
    LeaderGroup,
)
from dispatcher.store.submit import Room
from dispatcher.store.tables import (
    alert_groups,
    group_reports,
    group_updates,
    incidents,
    reports,
)


class LeaderRoom(Room):
    """The open groups as a leader's app lists them."""

    async def leader_groups(
        self, *, receivers: Sequence[str], escalated_from: Sequence[str], incident_limit: int
    ) -> list[LeaderGroup]:
        """The open groups of `receivers`, and those of `escalated_from` that escalated,
        newest report first, each with its last update, its `incident_limit` newest
        incidents and its acknowledgements."""
        return await self._read(
            lambda conn: _leader_groups(conn, list(receivers), list(escalated_from), incident_limit)
        )


def _leader_groups(
    conn: Connection, receivers: list[str], escalated_from: list[str], incident_limit: int
) -> list[LeaderGroup]:
    rows = conn.execute(
        select(alert_groups).where(
            alert_groups.c.closed_at.is_(None),
            or_(
                alert_groups.c.receiver.in_(receivers),
                and_(
                    alert_groups.c.receiver.in_(escalated_from),
                    alert_groups.c.escalated_at.is_not(None),
                ),
            ),
        )
    ).all()
    groups = sorted(
        (_group_from_row(r) for r in rows),
        key=lambda g: (g.last_report_at or g.created_at or datetime.min.replace(tzinfo=UTC), g.id),
        reverse=True,
    )
    found = []
    for group in groups:
        last = _newest_update(
            conn, group.id, group_updates.c.seq, group_updates.c.created_at,
            group_updates.c.summary,
        )  # fmt: skip
        # The group's newest incidents only: a surge's group holds thousands. A report counts
        # in the incident its own was merged into, if it was (docs/counting.md).
        merged = (
            select(incidents.c.merged_into)
            .where(incidents.c.id == reports.c.incident_id)
            .scalar_subquery()
        )
        counted_in = func.coalesce(merged, reports.c.incident_id)
        in_group = (
            select(counted_in)
            .join(group_reports, group_reports.c.report_pk == reports.c.pk)
            .where(group_reports.c.group_id == group.id, reports.c.incident_id.is_not(None))
        )
        total = conn.execute(
            select(func.count()).select_from(in_group.distinct().subquery())
        ).scalar_one()
        newest = conn.execute(
            select(incidents)
            .where(incidents.c.id.in_(in_group))
            .order_by(incidents.c.occurred_at.desc(), incidents.c.id.desc())
            .limit(incident_limit)
        ).all()
        members: dict[str, list[StoredReport]] = {i.id: [] for i in newest}
        if members:
            for r in conn.execute(
                select(reports, counted_in.label("counted_in"))
                .join(group_reports, group_reports.c.report_pk == reports.c.pk)
                .where(group_reports.c.group_id == group.id, counted_in.in_(list(members)))
                .order_by(reports.c.pk)
            ):
                members[r.counted_in].append(report_row.stored(r))
        held = [
            IncidentRow(
                id=i.id,
                kind=i.kind,
                region=i.region,
                location=Point(i.lat, i.lon) if i.lat is not None else None,
                occurred_at=i.occurred_at,
                named=i.named,
                reports=tuple(members[i.id]),
            )
            for i in newest
        ]
        latest = (last.seq, last.created_at, dict(last.summary)) if last is not None else None
        found.append(LeaderGroup(group, latest, held, int(total), _acks(conn, group.id)))
    return found
