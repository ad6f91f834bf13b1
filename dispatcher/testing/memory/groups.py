"""Alert groups in memory (`GroupStore`): what is due, a flush's one read, writing an
update with its pushes, settling and holding, acknowledgements, the hand-over to a route's
new receiver, and the groups as leaders and the desk list them.

As `Store`: an update is written only on top of the group as it was read (so two
flushers never send one update twice), a report that joined since keeps the group due a
group_interval later, a closing or an escalation only if nothing changed at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.group import Counted, GroupTarget, Timing
from dispatcher.store.hand_over import HandOver
from dispatcher.store.rows import (
    Ack,
    FlushReads,
    GroupRow,
    LastUpdate,
    LeaderGroup,
    OpenGroup,
    OutboxItem,
    PendingPush,
)
from dispatcher.surge import SurgeState
from dispatcher.testing.memory.admin import Room, active_devices, current_silences
from dispatcher.testing.memory.outbox import pending, queue, supersede
from dispatcher.testing.memory.reports import hand_over, incident_row
from dispatcher.testing.memory.tables import Tables, Update, aware

_EARLIEST = datetime.min.replace(tzinfo=UTC)


class MemoryGroups(Room):
    """`GroupStore` (store/ports.py) in memory."""

    async def due_groups(self, now: datetime, limit: int = 200) -> list[GroupRow]:
        due = [g for g in self.t.groups.values() if g.closed_at is None
               and g.next_flush_at is not None and g.next_flush_at <= now]  # fmt: skip
        return sorted(due, key=lambda g: g.next_flush_at or now)[:limit]

    async def get_group(self, group_id: str) -> GroupRow | None:
        return self.t.groups.get(group_id)

    async def hand_over_groups(
        self, receivers: Mapping[str, tuple[str, Timing]], *, now: datetime, rules_version: str
    ) -> list[HandOver]:
        moved = []
        for group in sorted(self.t.groups.values(), key=lambda g: (g.route_id, g.labels)):
            wanted = receivers.get(group.route_id)
            if group.closed_at is not None or wanted is None or wanted[0] == group.receiver:
                continue
            target = GroupTarget(group.route_id, group.labels, *wanted)
            new_id = hand_over(
                self.t, group, target, now=now, last_report_at=group.last_report_at,
                rules_version=rules_version,
            )  # fmt: skip
            moved.append(HandOver(group.id, new_id, group.route_id, group.receiver, wanted[0]))
        return moved

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
        t = self.t
        group = t.groups.get(group_id)
        if group is None:
            return None
        pks = sorted(pk for pk, _ in t.joined[group_id])
        after = None  # the highest row counted, if the rows up to it add up
        if counted is not None and counted.rows:
            upto = [pk for pk in pks if pk <= counted.top]
            if (len(upto), sum(upto)) == (counted.rows, counted.pk_sum):
                after = counted.top
        whole = after is None
        rows = [(pk, t.as_read(pk, counted=True).report) for pk in pks
                if after is None or pk > after]  # fmt: skip
        return FlushReads(
            group=group,
            reports=rows,
            whole=whole,
            last=_last(t, group_id, None if whole else told_seq),
            acks=_acks(t, group_id),
            silences=current_silences(t, silences_ending_after),
            devices=active_devices(t, leader_ids),
            today=_live_incidents(t, *today) if today is not None else None,
        )

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
        written = _record(self.t, group, now, summary, outbox, rules_version, None, wakeup,
                          close, escalate)  # fmt: skip
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
        return _record(self.t, group, now, summary, outbox, rules_version, lease, wakeup,
                       False, False)  # fmt: skip

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
        written = _record(self.t, group, now, summary, outbox, rules_version, None, wakeup,
                          close, False)  # fmt: skip
        if written is None:
            return False
        held = self.t.groups[group.id]
        self.t.groups[group.id] = replace(held, surge_open_at=state.open_since,
                                          surge_told=state.told)  # fmt: skip
        return True

    async def settle(self, group: GroupRow, *, wakeup: datetime | None = None) -> bool:
        if not _as_read(self.t, group):
            return False
        self.t.groups[group.id] = replace(self.t.groups[group.id], pending=False,
                                          next_flush_at=wakeup)  # fmt: skip
        return True

    async def hold(self, group: GroupRow, *, until: datetime) -> bool:
        if not _as_read(self.t, group):
            return False
        self.t.groups[group.id] = replace(self.t.groups[group.id], next_flush_at=until)
        return True

    async def recent_pushes(
        self, route_ids: Sequence[str], *, since: datetime
    ) -> list[tuple[str, tuple[tuple[str, str], ...], datetime]]:
        return [
            (g.route_id, g.labels, g.last_flush_at) for g in self.t.groups.values()
            if g.route_id in route_ids and g.last_flush_at is not None
            and g.last_flush_at >= since
        ]  # fmt: skip

    async def acknowledge(
        self, group_id: str, *, leader_id: str, at: datetime, responding: bool, note: str | None
    ) -> GroupRow | None:
        group = self.t.groups.get(group_id)
        if group is None or group.closed_at is not None:
            return None
        self.t.acks.setdefault(group_id, []).append(Ack(leader_id, at, responding, note))
        due = (at if not group.pending or group.next_flush_at is None
               else min(group.next_flush_at, at))  # fmt: skip
        group = self.t.groups[group_id] = replace(
            group, pending=True, next_flush_at=due, acked_at=group.acked_at or at
        )
        return group

    async def acks(self, group_id: str) -> list[Ack]:
        return _acks(self.t, group_id)

    async def get_update(
        self, group_id: str, seq: int, *, leader_id: str
    ) -> tuple[datetime, dict[str, Any]] | None:
        sent_to = any(p.group_id == group_id and p.seq == seq and p.leader_id == leader_id
                      for p in self.t.pushes.values())  # fmt: skip
        update = next((u for u in self.t.updates.get(group_id, ()) if u.seq == seq), None)
        if update is None or not sent_to:
            return None
        return update.created_at, dict(update.summary)

    async def leader_groups(
        self, *, receivers: Sequence[str], escalated_from: Sequence[str], incident_limit: int
    ) -> list[LeaderGroup]:
        t = self.t
        groups = sorted(
            (g for g in t.groups.values() if g.closed_at is None and (
                g.receiver in receivers
                or (g.receiver in escalated_from and g.escalated_at is not None))),
            key=lambda g: (g.last_report_at or g.created_at or _EARLIEST, g.id),
            reverse=True,
        )  # fmt: skip
        found = []
        for group in groups:
            pks = [pk for pk, _ in t.joined[group.id]]
            held = {t.counted_in(t.reports[pk].report.incident) for pk in pks} - {None}
            newest = sorted((t.incidents[i] for i in held if i is not None),
                            key=lambda i: (i.occurred_at, i.id), reverse=True)  # fmt: skip
            incidents = [incident_row(t, i, pks) for i in newest[:incident_limit]]
            updates = t.updates.get(group.id)
            latest = None
            if updates:
                last = updates[-1]
                latest = (last.seq, last.created_at, dict(last.summary))
            found.append(LeaderGroup(group, latest, incidents, len(held), _acks(t, group.id)))
        return found

    async def open_groups(self, limit: int = 500) -> list[OpenGroup]:
        t = self.t
        groups = sorted((g for g in t.groups.values() if g.closed_at is None),
                        key=lambda g: g.id)  # fmt: skip
        groups.sort(key=lambda g: g.last_report_at or _EARLIEST, reverse=True)
        found = []
        for g in groups[:limit]:
            held = [t.reports[pk].report for pk, _ in t.joined[g.id]]
            updates = t.updates.get(g.id)
            found.append(OpenGroup(
                group=g,
                last_update_at=max(u.created_at for u in updates) if updates else None,
                acks=tuple(t.acks.get(g.id, ())),
                regions=tuple(sorted({r.region for r in held})),
                kinds=tuple(sorted({r.kind for r in held})),
                reports=len(held),
            ))  # fmt: skip
        return found


def _acks(t: Tables, group_id: str) -> list[Ack]:
    """By time, then in the order written."""
    return sorted(t.acks.get(group_id, ()), key=lambda a: a.at)


def _last(t: Tables, group_id: str, told_seq: int | None) -> LastUpdate | None:
    updates = t.updates.get(group_id)
    if not updates:
        return None
    last = updates[-1]
    if last.seq == told_seq:
        return LastUpdate(last.seq, last.created_at, None)
    return LastUpdate(last.seq, last.created_at, dict(last.summary.get("state", {})))


def _live_incidents(t: Tables, regions: frozenset[str], since: datetime) -> int:
    """Incidents in `regions` since `since` that some report's latest revision still counts."""
    live = set()
    for revs in t.revisions.values():
        r = t.reports[revs[max(revs)]].report
        if r.region in regions and r.occurred_at >= since and r.status != "retracted":
            live.add(t.counted_in(r.incident))
    return len(live)


def _as_read(t: Tables, group: GroupRow) -> bool:
    """The group is still as `group` read it: open, same update, same pending change, no
    report since."""
    held = t.groups.get(group.id)
    return (
        held is not None and held.closed_at is None and held.seq == group.seq
        and held.pending == group.pending and held.last_report_at == group.last_report_at
    )  # fmt: skip


def _record(
    t: Tables,
    group: GroupRow,
    now: datetime,
    summary: dict[str, Any],
    outbox: Sequence[OutboxItem],
    rules_version: str,
    lease: timedelta | None,
    wakeup: datetime | None,
    close: bool,
    escalate: bool,
) -> list[PendingPush] | None:
    """Write update seq+1 of a group and its pushes (claimed for `lease` if given); None
    when the group moved on since it was read."""
    held = t.groups.get(group.id)
    seq = group.seq + 1
    aware(now)
    if close or escalate:
        if not _as_read(t, group):
            return None
        assert held is not None
        pending_, next_flush_at = False, None if close else wakeup
    else:
        if held is None or held.seq != group.seq or held.closed_at is not None:
            return None
        # Not undone by a report that joined meanwhile: it stays due a group_interval on.
        joined = held.last_report_at != group.last_report_at
        pending_ = held.pending if joined else False
        next_flush_at = now + group.group_interval if joined else wakeup
    t.groups[group.id] = replace(
        held, seq=seq, pending=pending_, next_flush_at=next_flush_at,
        last_flush_at=group.last_flush_at if escalate else now,
        closed_at=now if close else None,
        escalated_at=now if escalate else group.escalated_at,
    )  # fmt: skip
    # Kept as the JSON column keeps it: what cannot be stored there fails here too.
    kept = json.loads(json.dumps(summary, ensure_ascii=False))
    t.updates.setdefault(group.id, []).append(Update(seq, now, kept, rules_version))
    if not outbox:
        return []
    supersede(t, group.id, seq, outbox)
    queued = queue(t, group.id, seq, outbox, now, now + lease if lease is not None else None)
    return pending(t, queued) if lease is not None else []
