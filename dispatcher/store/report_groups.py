"""The alert groups a transaction's new reports join: found or opened, and their timers set.

Each group a transaction's reports join is read once (`open_group`, or from the SQLite
writer's record of the open groups it left) and written once, by its first report
(`write_group`): opened, handed over to its route's new receiver (store/hand_over.py), or
pending with its due time. When the group is due is `group.first_flush` and
`group.next_flush_after_report`, pure.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatcher.group import GroupTarget, first_flush, next_flush_after_report
from dispatcher.store.dbapi import Sql
from dispatcher.store.hand_over import GroupRace, hand_over, labels_json
from dispatcher.store.report_sql import INSERT_GROUP, OPEN_GROUP, TOUCH_GROUP

# SQLite: open groups as the writer left them, (route, labels) ->
# (id, pending, next_flush_at, last_flush_at, receiver).
OpenGroups = dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Any, ...]]


@dataclass(slots=True)
class Joined:
    """A group a transaction's reports join."""

    id: str
    new: bool
    target: GroupTarget
    first_now: datetime
    last_now: datetime
    # (pending, next_flush_at, last_flush_at, receiver)
    existing: tuple[Any, ...] | None = None


def open_group(sql: Sql, known: OpenGroups | None, target: GroupTarget, now: datetime) -> Joined:
    """The open group of `target`, or a new one (written by `write_group`)."""
    held = known.get((target.route_id, target.labels)) if known else None
    if held is not None:
        group_id, *existing = held
        return Joined(group_id, False, target, now, now, tuple(existing))
    rows = sql.rows(OPEN_GROUP, {"route_id": target.route_id, "group_key": target.group_key})
    if not rows:
        return Joined(secrets.token_hex(16), True, target, now, now)
    group_id, *existing = rows[0]
    return Joined(str(group_id), False, target, now, now, tuple(existing))


def write_group(sql: Sql, g: Joined, rules_version: str) -> tuple[Any, Any]:
    """Open the group, hand it over to the target's receiver, or set its timer: once per
    transaction, by its first report (later ones would find it pending with the same due
    time). `g.id` becomes the group's id; its (next_flush_at, last_flush_at) as bound."""
    t, timing = g.target, g.target.timing
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
                    "escalate_after_s": (
                        timing.escalate_after.total_seconds()
                        if timing.escalate_after is not None
                        else None
                    ),
                },
            )
            if inserted:
                return sql.at(first_flush(g.first_now, timing)), None
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
                return sql.at(first_flush(g.first_now, timing)), None
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
    return sql.at(due), last_flush_at
