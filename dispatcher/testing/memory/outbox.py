"""The outbox in memory (`OutboxStore`, and the retention `PipelineStore.forget`).

As `Store`: a claim holds its pushes for its lease (there are no claim owners here: one
process holds the memory); pushes past their time to live are closed as expired, those to
a phone whose key was revoked as failed; an outcome disables a dead phone and queues a
fallback once per update and leader; a newer update of a group supersedes what is still
pending for the same phones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from dispatcher.store.access import KEY_REVOKED
from dispatcher.store.rows import DeliveryRow, OutboxItem, Outcome, PendingPush
from dispatcher.testing.memory.admin import Room
from dispatcher.testing.memory.tables import Push, Tables, aware


class MemoryOutbox(Room):
    """`OutboxStore` (store/ports.py) in memory."""

    async def claim_pushes(
        self, now: datetime, *, lease: timedelta, limit: int = 500
    ) -> list[PendingPush]:
        t = self.t
        aware(now)
        unclaimed = [p for p in t.pushes.values() if p.status == "pending"
                     and (p.claimed_until is None or p.claimed_until <= now)]  # fmt: skip
        for p in unclaimed:
            device = t.device(p.device_id)
            if (p.next_attempt_at is not None and p.next_attempt_at <= now and device is not None
                    and device.disabled_reason == KEY_REVOKED):  # fmt: skip
                p.status, p.last_error, p.claimed_until = "failed", KEY_REVOKED, None
            elif p.expires_at is not None and p.expires_at <= now:
                p.status, p.claimed_until = "expired", None
                p.last_error = "not sent within its time to live"
        due = sorted(
            (p for p in unclaimed if p.status == "pending"
             and p.next_attempt_at is not None and p.next_attempt_at <= now),
            key=lambda p: p.id,
        )[:limit]  # fmt: skip
        for p in due:
            p.claimed_until = now + lease
        return pending(t, due)

    async def record_outcomes(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        device_of: dict[int, int | None],
        fallbacks: dict[int, str] | None = None,
    ) -> None:
        t = self.t
        for o in outcomes:
            p = t.pushes.get(o.id)
            if p is None:
                continue  # forgotten since it was claimed: nothing to record
            p.status, p.claimed_until, p.attempts = o.status, None, p.attempts + 1
            p.next_attempt_at, p.last_error = o.next_attempt_at, o.error
            p.message_name = o.message_name if o.status == "sent" else None
            p.sent_at = now if o.status == "sent" else None
        for o in outcomes:
            device = t.device(device_of.get(o.id))
            if o.disable_device and device is not None and device.disabled_at is None:
                device.disabled_at, device.disabled_reason = now, (o.error or "")[:200]
        for push_id, channel in (fallbacks or {}).items():
            failed = t.pushes[push_id]
            if any(p.group_id == failed.group_id and p.seq == failed.seq
                   and p.leader_id == failed.leader_id and p.channel == channel
                   for p in t.pushes.values()):  # fmt: skip
                continue  # a leader with two failing phones gets one SMS
            n = next(t.push_ids)
            t.pushes[n] = Push(
                n, failed.group_id, failed.seq, failed.leader_id, None, channel, failed.title,
                failed.body, failed.data, failed.collapse_key, failed.priority, now, now,
                failed.expires_at, last_error=f"fallback for push {push_id}",
            )  # fmt: skip

    async def deliveries(self, group_id: str) -> list[DeliveryRow]:
        found = sorted((p for p in self.t.pushes.values() if p.group_id == group_id),
                       key=lambda p: (p.seq, p.id))  # fmt: skip
        rows = []
        for p in found:
            device = self.t.device(p.device_id)
            rows.append(DeliveryRow(
                p.id, p.seq, p.leader_id, p.device_id,
                device.row.token if device else None, device.row.platform if device else None,
                p.channel, p.status, p.attempts, p.last_error, p.message_name, p.created_at,
                p.sent_at, p.next_attempt_at, p.expires_at,
            ))  # fmt: skip
        return rows

    async def notification_counts(self) -> dict[str, int]:
        return dict(Counter(p.status for p in self.t.pushes.values()))

    async def forget(
        self, *, closed_before: datetime, disabled_before: datetime
    ) -> tuple[int, int]:
        t = self.t
        old = {g.id for g in t.groups.values()
               if g.closed_at is not None and g.closed_at < closed_before}  # fmt: skip
        records = [n for n, p in t.pushes.items() if p.group_id in old]
        for n in records:
            del t.pushes[n]
        dead = {token: d for token, d in t.devices.items()
                if d.disabled_at is not None and d.disabled_at < disabled_before}  # fmt: skip
        gone = {d.row.id for d in dead.values()}
        for p in t.pushes.values():
            if p.device_id in gone:
                p.device_id = None
        for token in dead:
            del t.devices[token]
        return len(records), len(dead)


def supersede(t: Tables, group_id: str, seq: int, outbox: Sequence[OutboxItem]) -> None:
    """Older updates of the group still pending for the same phones (or, deviceless, the
    same leaders) are not sent: the new one tells the running count."""
    devices = {i.device_id for i in outbox if i.device_id is not None}
    leaders = {i.leader_id for i in outbox if i.device_id is None}
    for p in t.pushes.values():
        if p.group_id != group_id or p.seq >= seq or p.status != "pending":
            continue
        if p.device_id in devices or (p.device_id is None and p.leader_id in leaders):
            p.status, p.last_error = "superseded", f"superseded by update {seq}"
            p.claimed_until = None


def queue(
    t: Tables,
    group_id: str,
    seq: int,
    outbox: Sequence[OutboxItem],
    now: datetime,
    claimed_until: datetime | None,
) -> list[Push]:
    queued = []
    for item in outbox:
        n = next(t.push_ids)
        push = t.pushes[n] = Push(
            n, group_id, seq, item.leader_id, item.device_id, item.channel, item.title,
            item.body, dict(item.data), item.collapse_key, item.priority, now, now,
            item.expires_at, claimed_until=claimed_until,
        )  # fmt: skip
        queued.append(push)
    return queued


def pending(t: Tables, pushes: Iterable[Push]) -> list[PendingPush]:
    """Outbox rows as senders need them, with their phone; none to a phone whose key was
    revoked since the row was written."""
    out = []
    for p in sorted(pushes, key=lambda p: p.id):
        device = t.device(p.device_id)
        if device is not None and device.disabled_reason == KEY_REVOKED:
            continue
        row = device.row if device is not None else None
        out.append(PendingPush(
            p.id, p.group_id, p.seq, p.leader_id, p.device_id, row.token if row else None,
            row.platform if row else None, p.channel, p.title, p.body, dict(p.data),
            p.collapse_key, p.priority, p.attempts, p.expires_at,
            row.p256dh if row else None, row.auth if row else None,
        ))  # fmt: skip
    return out
