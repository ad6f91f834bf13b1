"""Alert groups and their updates, as the pipeline's flush and the web handlers ask for them:
the `GroupStore` protocol. Which groups are due, a flush's one read, writing an update with
its notifications, settling or holding a group, acknowledgements, the hand-over to a route's
new receiver.

Each method runs a plain function of a connection: reads on the reader, writes through the
one write path (they pickle for the SQLite writer process). Those functions are in
store/flush_rows.py (a flush's read and an update's write, side by side) and
store/hand_over.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import (
    Connection,
    exists,
    select,
)

from dispatcher.group import Counted, Timing
from dispatcher.model import Report
from dispatcher.store.admin import _active_devices, _current_silences
from dispatcher.store.flush_rows import (
    _ack,
    _acks,
    _count_live_incidents,
    _flush_last,
    _get_group,
    _hold,
    _last_update,
    _record_surge,
    _record_update,
    _reports_joined,
    _settle,
)
from dispatcher.store.hand_over import HandOver, hand_over_groups
from dispatcher.store.mappers import _group_from_row, _labels
from dispatcher.store.rows import (
    Ack,
    FlushReads,
    GroupRow,
    OutboxItem,
    PendingPush,
)
from dispatcher.store.submit import Room
from dispatcher.store.tables import (
    alert_groups,
    group_updates,
    notifications,
)
from dispatcher.surge import SurgeState


class GroupRoom(Room):
    """Alert groups and updates: the `GroupStore` protocol."""

    async def due_groups(self, now: datetime, limit: int = 200) -> list[GroupRow]:
        """Open groups with something due: an update, a reminder or their closing."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(alert_groups)
                .where(alert_groups.c.next_flush_at <= now, alert_groups.c.closed_at.is_(None))
                .order_by(alert_groups.c.next_flush_at)
                .limit(limit)
            )
            return [_group_from_row(row) for row in rows]

    async def hand_over_groups(
        self, receivers: Mapping[str, tuple[str, Timing]], *, now: datetime, rules_version: str
    ) -> list[HandOver]:
        """Hand every open group whose route `receivers` gives another receiver over to it
        (`hand_over.hand_over`): the old receiver hears nothing more, a new group holding all
        the old one's reports tells the new one the whole state after the route's
        group_wait. Groups of routes not in `receivers` are left alone. Run when a rule
        set is applied, start-up included; safe with several instances at once."""
        return await self._write(
            partial(
                hand_over_groups, receivers=dict(receivers), now=now, rules_version=rules_version
            )
        )

    async def get_group(self, group_id: str) -> GroupRow | None:
        return await self._read(lambda conn: _get_group(conn, group_id))

    async def group_reports(self, group_id: str) -> list[Report]:
        """Every revision of every report that joined the group."""
        joined, _ = await self._read(lambda conn: _reports_joined(conn, group_id, None))
        return [report for _, report in joined]

    async def last_update(self, group_id: str) -> tuple[datetime, dict[str, Any]] | None:
        return await self._read(lambda conn: _last_update(conn, group_id))

    async def flush_reads(
        self,
        group_id: str,
        *,
        leader_ids: Sequence[str],
        silences_ending_after: datetime,
        today: tuple[frozenset[str], datetime] | None,
        counted: Counted | None = None,
        told_seq: int | None = None,
    ) -> FlushReads | None:
        """What a flush of the group reads, in one read transaction: the group, the reports
        that joined it (only those after the rows the caller has `counted` already, unless
        those no longer add up), its last update, acknowledgements, current silences, the
        receivers' phones and (for `today`: regions, since) the live incidents there. The
        last update's state is left out if it is update `told_seq` and the reports were not
        read whole. None if the group is gone."""

        def read(conn: Connection) -> FlushReads | None:
            group = _get_group(conn, group_id)
            if group is None:
                return None
            joined, whole = _reports_joined(conn, group_id, counted)
            return FlushReads(
                group=group,
                reports=joined,
                whole=whole,
                last=_flush_last(conn, group_id, None if whole else told_seq),
                acks=_acks(conn, group_id),
                silences=_current_silences(conn, silences_ending_after),
                devices=_active_devices(conn, leader_ids),
                today=_count_live_incidents(conn, *today) if today is not None else None,
            )

        return await self._read(read)

    async def record_update(
        self,
        group: GroupRow,
        *,
        now: datetime,
        summary: dict[str, Any],
        outbox: Sequence[OutboxItem],
        rules_version: str,
        wakeup: datetime | None = None,
        close: bool = False,
        escalate: bool = False,
    ) -> bool:
        """Write update seq+1 of the group (a change, a reminder or, with `close`, its closing
        summary) and queue its pushes, atomically; the group next wakes at `wakeup`.

        The update is claimed with a conditional write on the group's sequence number, so two
        flushers never send the same update twice. A report that joined since the group was
        read is not passed over: the group stays pending, due a group_interval after this
        update (at once for an immediate route). A closing or an escalation is written only
        if nothing at all changed. Returns False if the group moved on; it is then looked at
        again.
        """
        written = await self._write(
            partial(
                _record_update, group=group, now=now, summary=summary, outbox=outbox,
                rules_version=rules_version, lease=None, wakeup=wakeup, close=close,
                escalate=escalate,
            )
        )  # fmt: skip
        return written is not None

    async def record_update_and_claim(
        self,
        group: GroupRow,
        *,
        now: datetime,
        summary: dict[str, Any],
        outbox: Sequence[OutboxItem],
        rules_version: str,
        lease: timedelta,
        wakeup: datetime | None = None,
    ) -> list[PendingPush] | None:
        """`record_update`, with its pushes claimed for the caller to send at once (an
        immediate route): no wait for the next delivery round. None if not claimed."""
        owner = await self.claims.current() if self.claims is not None else None
        return await self._write(
            partial(
                _record_update, group=group, now=now, summary=summary, outbox=outbox,
                rules_version=rules_version, lease=lease, wakeup=wakeup, close=False,
                escalate=False, owner=owner,
            )
        )  # fmt: skip

    async def record_surge(
        self,
        group: GroupRow,
        *,
        now: datetime,
        summary: dict[str, Any],
        outbox: Sequence[OutboxItem],
        rules_version: str,
        state: SurgeState,
        wakeup: datetime | None,
        close: bool = False,
    ) -> bool:
        """`record_update` for a surge group, with its surge state (open or not, the count
        told) written in the same transaction; `close` closes the group (no pushes then)."""
        written = await self._write(
            partial(
                _record_surge, group=group, now=now, summary=summary, outbox=outbox,
                rules_version=rules_version, state=state, wakeup=wakeup, close=close,
            )
        )  # fmt: skip
        return written is not None

    async def settle(self, group: GroupRow, *, wakeup: datetime | None = None) -> bool:
        """Clear a group's pending change that needs no update (nothing a leader would see);
        the group next wakes at `wakeup` (a reminder or its closing)."""

        return await self._write(partial(_settle, group=group, wakeup=wakeup))

    async def acknowledge(
        self, group_id: str, *, leader_id: str, at: datetime, responding: bool, note: str | None
    ) -> GroupRow | None:
        """Record a leader's acknowledgement and make it the group's next update (due now):
        every leader of the team is told who acknowledged. Reminders stop from the first.
        None if the group does not exist or has closed."""

        return await self._write(
            partial(
                _ack,
                group_id=group_id,
                leader_id=leader_id,
                at=at,
                responding=responding,
                note=note,
            )
        )

    async def get_update(
        self, group_id: str, seq: int, *, leader_id: str
    ) -> tuple[datetime, dict[str, Any]] | None:
        """Update `seq` of a group as recorded, if it was addressed to `leader_id`."""
        async with self.engine.connect() as conn:
            sent_to = exists().where(
                notifications.c.group_id == group_id,
                notifications.c.seq == seq,
                notifications.c.leader_id == leader_id,
            )
            row = (
                await conn.execute(
                    select(group_updates.c.created_at, group_updates.c.summary).where(
                        group_updates.c.group_id == group_id, group_updates.c.seq == seq, sent_to
                    )
                )
            ).first()
            return (row.created_at, dict(row.summary)) if row is not None else None

    async def hold(self, group: GroupRow, *, until: datetime) -> bool:
        """Put off what a group owes its leaders until `until` (a silence's end)."""

        return await self._write(partial(_hold, group=group, until=until))

    async def recent_pushes(
        self, route_ids: Sequence[str], *, since: datetime
    ) -> list[tuple[str, tuple[tuple[str, str], ...], datetime]]:
        """(route, labels, last push) of the groups of these routes that pushed since
        `since`."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    alert_groups.c.route_id, alert_groups.c.labels, alert_groups.c.last_flush_at
                ).where(
                    alert_groups.c.route_id.in_(list(route_ids)),
                    alert_groups.c.last_flush_at >= since,
                )
            )
            return [(r.route_id, _labels(r.labels), r.last_flush_at) for r in rows]

    async def acks(self, group_id: str) -> list[Ack]:
        return await self._read(lambda conn: _acks(conn, group_id))
