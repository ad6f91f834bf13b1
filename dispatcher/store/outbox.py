"""The outbox: notifications written with their update, claimed for delivery under a lease,
their outcomes recorded (a fallback queued, a device disabled), the delivery record operators
read, and the retention that forgets old records and disabled phones.

A fan-out writes, claims and records thousands of rows at once: plain SQL run as one
executemany, not a Core expression per row (docs/performance.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    func,
    or_,
    select,
    update,
)

from dispatcher.store import access, dbapi
from dispatcher.store.claims import OwnerLost, live_owners
from dispatcher.store.mappers import _json_object
from dispatcher.store.rows import (
    DeliveryRow,
    OutboxItem,
    Outcome,
    PendingPush,
)
from dispatcher.store.sole_sender import SoleSender
from dispatcher.store.submit import Room
from dispatcher.store.tables import (
    alert_groups,
    devices,
    notifications,
)

log = logging.getLogger("dispatcher.store")


class OutboxRoom(Room):
    """The outbox: the `OutboxStore` protocol, and retention."""

    sole: SoleSender | None  # SQLite: the lock that says this service sends from the file

    async def forget(
        self, *, closed_before: datetime, disabled_before: datetime
    ) -> tuple[int, int]:
        """Retention: delete the delivery records of groups closed before `closed_before`
        and the phones disabled before `disabled_before`. Returns (records, phones)."""

        return await self._write(
            partial(_forget, closed_before=closed_before, disabled_before=disabled_before)
        )

    async def claim_pushes(
        self, now: datetime, *, lease: timedelta, limit: int = 500
    ) -> list[PendingPush]:
        """Claim the pushes due now for `lease`: another sender (a second instance) skips
        them until the claim runs out, so no push goes out twice. Pushes past their time to
        live are closed as expired instead. On PostgreSQL the claims are signed with this
        instance's lock (store/claims.py): if the instance dies, others take them over at
        once instead of after `lease`."""
        if self.claims is None:
            return await self._write(partial(_claim, now=now, lease=lease, limit=limit))
        owner = await self.claims.current()
        try:
            return await self._write(partial(_claim, now=now, lease=lease, limit=limit,
                                             owner=owner))  # fmt: skip
        except OwnerLost:
            log.warning("the claim lock's connection dropped; taking a new one")
            owner = await self.claims.acquire(lost=owner)
            return await self._write(partial(_claim, now=now, lease=lease, limit=limit,
                                             owner=owner))  # fmt: skip

    async def free_dead_claims(self) -> int | None:
        """SQLite: if this is the one service sending from the file (store/sole_sender.py),
        free the claims an earlier process left, so that its pushes go out at the next
        claim rather than when their lease runs out; how many. None if another service
        sends from the file, and on PostgreSQL (where the owners' locks do it)."""
        if self.sole is None or not await self.sole.take():
            return None
        return await self._write(_free_claims)

    async def deliveries(self, group_id: str) -> list[DeliveryRow]:
        """Every notification of a group, oldest first, with its device."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                _with_devices()
                .where(notifications.c.group_id == group_id)
                .order_by(notifications.c.seq, notifications.c.id)
            )
            return [
                DeliveryRow(
                    id=r.id,
                    seq=r.seq,
                    leader_id=r.leader_id,
                    device_id=r.device_id,
                    token=r.token,
                    platform=r.platform,
                    channel=r.channel,
                    status=r.status,
                    attempts=r.attempts,
                    last_error=r.last_error,
                    message_name=r.message_name,
                    created_at=r.created_at,
                    sent_at=r.sent_at,
                    next_attempt_at=r.next_attempt_at,
                    expires_at=r.expires_at,
                )
                for r in rows
            ]

    async def record_outcomes(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        device_of: dict[int, int | None],
        fallbacks: dict[int, str] | None = None,
    ) -> None:
        """Record what became of each push; a failed push listed in `fallbacks` (its id ->
        a channel) is queued again for its leader on that channel, once per update."""
        await self._write(
            partial(_record_outcomes, outcomes=outcomes, now=now, device_of=device_of,
                    fallbacks=fallbacks or {})
        )  # fmt: skip

    async def notification_counts(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(notifications.c.status, func.count()).group_by(notifications.c.status)
            )
            return {str(status): int(n) for status, n in rows}


# A fan-out writes, claims and records thousands of rows at once: plain SQL run as one
# executemany (see store/dbapi.py), not a Core expression per row (docs/performance.md).
INSERT_PUSH = (
    "INSERT INTO notifications (group_id, seq, leader_id, device_id, channel, title, body, "
    "data, collapse_key, priority, status, attempts, next_attempt_at, created_at, expires_at, "
    "claimed_until, claimed_by) VALUES (:group_id, :seq, :leader_id, :device_id, :channel, "
    ":title, :body, :data, :collapse_key, :priority, 'pending', 0, :now, :now, :expires_at, "
    ":claimed_until, :claimed_by)"
)


PENDING = (
    "SELECT n.id, n.group_id, n.seq, n.leader_id, n.device_id, d.token, d.platform, n.channel, "
    "n.title, n.body, n.data, n.collapse_key, n.priority, n.attempts, n.expires_at, "
    "d.p256dh, d.auth FROM notifications n LEFT JOIN devices d ON d.id = n.device_id"
)


NOT_REVOKED = f"(d.disabled_reason IS NULL OR d.disabled_reason <> '{access.KEY_REVOKED}')"


RECORD_OUTCOME = (
    "UPDATE notifications SET status = :status, claimed_until = NULL, attempts = attempts + 1, "
    "next_attempt_at = :next_attempt_at, last_error = :last_error, "
    "message_name = :message_name, sent_at = :sent_at WHERE id = :id"
)


def _supersede(conn: Connection, group_id: str, seq: int, outbox: Sequence[OutboxItem]) -> None:
    """Older updates of the group still pending for the same devices are not sent: the new
    one tells the running count, and a phone shows only the latest of a group."""
    older = and_(
        notifications.c.group_id == group_id,
        notifications.c.seq < seq,
        notifications.c.status == "pending",
    )
    values = {
        "status": "superseded",
        "last_error": f"superseded by update {seq}",
        "claimed_until": None,
    }
    device_ids = [i.device_id for i in outbox if i.device_id is not None]
    if device_ids:
        conn.execute(
            update(notifications)
            .where(older, notifications.c.device_id.in_(device_ids))
            .values(**values)
        )
    deviceless = [i.leader_id for i in outbox if i.device_id is None]
    if deviceless:
        conn.execute(
            update(notifications)
            .where(
                older,
                notifications.c.device_id.is_(None),
                notifications.c.leader_id.in_(deviceless),
            )
            .values(**values)
        )


def _claim(
    conn: Connection, now: datetime, lease: timedelta, limit: int, owner: int | None = None
) -> list[PendingPush]:
    """Claim up to `limit` pushes due now. A claim holds until its lease runs out or, on
    PostgreSQL, until its owner's lock is gone (store/claims.py), whichever comes first."""
    unclaimed = or_(notifications.c.claimed_until.is_(None), notifications.c.claimed_until <= now)
    if owner is not None:
        alive = live_owners(conn)
        if owner not in alive:
            raise OwnerLost(f"the advisory lock of claim owner {owner} is gone")
        unclaimed = or_(
            unclaimed,
            and_(notifications.c.claimed_by.is_not(None), notifications.c.claimed_by.not_in(alive)),
        )
    access.stop_revoked(
        conn,
        due=and_(
            notifications.c.status == "pending", notifications.c.next_attempt_at <= now, unclaimed
        ),
    )
    conn.execute(
        update(notifications)
        .where(
            notifications.c.status == "pending",
            notifications.c.expires_at.is_not(None),
            notifications.c.expires_at <= now,
            unclaimed,
        )
        .values(status="expired", claimed_until=None, last_error="not sent within its time to live")
    )
    ids = list(
        conn.execute(
            select(notifications.c.id)
            .where(
                notifications.c.status == "pending",
                notifications.c.next_attempt_at <= now,
                unclaimed,
            )
            .order_by(notifications.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer
        ).scalars()
    )
    if not ids:
        return []
    conn.execute(
        update(notifications)
        .where(notifications.c.id.in_(ids))
        .values(claimed_until=now + lease, claimed_by=owner)
    )
    sql = dbapi.on(conn)
    marks = ", ".join(f":i{n}" for n in range(len(ids)))
    return _pending(sql, f"n.id IN ({marks})", {f"i{n}": i for n, i in enumerate(ids)})


def _free_claims(conn: Connection) -> int:
    freed = conn.execute(
        update(notifications)
        .where(notifications.c.status == "pending", notifications.c.claimed_until.is_not(None))
        .values(claimed_until=None, claimed_by=None)
    )
    return int(freed.rowcount)


def _with_devices() -> Any:
    """Outbox rows with their device's token and platform (none for a fallback channel)."""
    return select(notifications, devices.c.token, devices.c.platform).outerjoin(
        devices, devices.c.id == notifications.c.device_id
    )


def _pending(sql: dbapi.Sql, where: str, params: dict[str, Any]) -> list[PendingPush]:
    """Outbox rows as senders need them, with their device's token and platform. PENDING's
    columns are PendingPush's fields, in order. The rows of one update share their data
    and expiry, so each distinct value is decoded once."""
    # A phone whose key was revoked since the row was written gets nothing (the claim
    # closes such rows as failed once this claim runs out).
    rows = sql.rows(f"{PENDING} WHERE ({where}) AND {NOT_REVOKED} ORDER BY n.id", params)
    datas: dict[Any, dict[str, Any]] = {}
    times: dict[Any, datetime | None] = {}

    def data_of(raw: Any) -> dict[str, Any]:
        if not isinstance(raw, str):
            return dict(raw)
        if raw not in datas:
            datas[raw] = _json_object(raw)
        return dict(datas[raw])

    def time_of(raw: Any) -> datetime | None:
        if raw not in times:
            times[raw] = sql.time(raw)
        return times[raw]

    return [
        PendingPush(pk, group_id, seq, leader, device, token, platform, channel, title, body,
                    data_of(data), collapse_key, priority, attempts, time_of(expires_at),
                    p256dh, auth)
        for (pk, group_id, seq, leader, device, token, platform, channel, title, body, data,
             collapse_key, priority, attempts, expires_at, p256dh, auth) in rows
    ]  # fmt: skip


def _record_outcomes(
    conn: Connection,
    outcomes: Sequence[Outcome],
    now: datetime,
    device_of: dict[int, int | None],
    fallbacks: dict[int, str],
) -> None:
    sql = dbapi.on(conn)
    sent_at = sql.at(now)
    sql.run_many(
        RECORD_OUTCOME,
        [
            {
                "id": o.id,
                "status": o.status,
                "next_attempt_at": sql.at(o.next_attempt_at) if o.next_attempt_at else None,
                "last_error": o.error,
                "message_name": o.message_name if o.status == "sent" else None,
                "sent_at": sent_at if o.status == "sent" else None,
            }
            for o in outcomes
        ],
    )
    for o in outcomes:
        device_id = device_of.get(o.id)
        if o.disable_device and device_id is not None:
            conn.execute(
                update(devices)
                .where(and_(devices.c.id == device_id, devices.c.disabled_at.is_(None)))
                .values(disabled_at=now, disabled_reason=(o.error or "")[:200])
            )
    for notification_id, channel in fallbacks.items():
        _queue_fallback(conn, notification_id, channel, now)


def _queue_fallback(conn: Connection, notification_id: int, channel: str, now: datetime) -> None:
    """The same update for the same leader on `channel`, unless already queued there (a
    leader with two failing phones gets one SMS)."""
    failed = conn.execute(select(notifications).where(notifications.c.id == notification_id)).one()
    already = conn.execute(
        select(notifications.c.id).where(
            notifications.c.group_id == failed.group_id,
            notifications.c.seq == failed.seq,
            notifications.c.leader_id == failed.leader_id,
            notifications.c.channel == channel,
        )
    ).first()
    if already is not None:
        return
    conn.execute(
        notifications.insert().values(
            group_id=failed.group_id,
            seq=failed.seq,
            leader_id=failed.leader_id,
            device_id=None,
            channel=channel,
            title=failed.title,
            body=failed.body,
            data=failed.data,
            collapse_key=failed.collapse_key,
            priority=failed.priority,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            expires_at=failed.expires_at,
            last_error=f"fallback for push {notification_id}",
        )
    )


def _forget(
    conn: Connection, *, closed_before: datetime, disabled_before: datetime
) -> tuple[int, int]:
    old_groups = select(alert_groups.c.id).where(
        alert_groups.c.closed_at.is_not(None), alert_groups.c.closed_at < closed_before
    )
    records = conn.execute(
        notifications.delete().where(notifications.c.group_id.in_(old_groups))
    ).rowcount
    old_devices = select(devices.c.id).where(
        devices.c.disabled_at.is_not(None), devices.c.disabled_at < disabled_before
    )
    conn.execute(
        update(notifications)
        .where(notifications.c.device_id.in_(old_devices))
        .values(device_id=None)
    )
    phones = conn.execute(devices.delete().where(devices.c.id.in_(old_devices))).rowcount
    return int(records), int(phones)
