"""The hand-over of an open alert group to its route's new receiver.

A group's receiver is part of what it is: when the rules give its route another receiver,
the group is closed silently and a successor opened for the new one with all its reports.
Two callers: the report write path, when a report finds its group's receiver changed
(store/report_groups.py), and a rules edit, which hands every such group over at once
(`hand_over_groups`, run through the one write path by `GroupRoom.hand_over_groups`).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from dispatcher.group import Timing, first_flush
from dispatcher.store import dbapi
from dispatcher.store.dbapi import Sql
from dispatcher.store.mappers import _json_list, _labels

log = logging.getLogger("dispatcher.store")

# A group's receiver is part of what it is (as in Alertmanager). When the rules give its
# route another receiver, the open group is closed without a word to the old receiver (no
# closing update; its pushes not yet sent are superseded) and a new group takes over every
# report it holds, as new: its first update, after the route's group_wait, tells the new
# receiver the whole current state. The close is conditional, so of two transactions
# handing one group over only one opens its successor; the other joins that one.
CLOSE_HANDED_OVER = (
    "UPDATE alert_groups SET closed_at = :now, pending = :pending, next_flush_at = NULL, "
    "closed_reason = :reason, handed_over_to = :to WHERE id = :id AND closed_at IS NULL"
)
INSERT_SUCCESSOR = (
    "INSERT INTO alert_groups (id, route_id, group_key, labels, receiver, created_at, "
    "next_flush_at, last_flush_at, pending, seq, group_interval_s, rules_version, "
    "last_report_at, repeat_interval_s, close_after_s, escalate_after_s, took_over_from) "
    "VALUES (:id, :route_id, :group_key, :labels, :receiver, :created_at, :next_flush_at, "
    "NULL, :pending, 0, :group_interval_s, :rules_version, :last_report_at, "
    ":repeat_interval_s, :close_after_s, :escalate_after_s, :took_over_from) "
    "ON CONFLICT (route_id, group_key) WHERE closed_at IS NULL DO NOTHING"
)
COPY_GROUP_REPORTS = (
    "INSERT INTO group_reports (group_id, report_pk, added_at) "
    "SELECT :new, report_pk, added_at FROM group_reports WHERE group_id = :old"
)
SUPERSEDE_HANDED_OVER = (
    "UPDATE notifications SET status = 'superseded', last_error = :reason, "
    "claimed_until = NULL WHERE group_id = :old AND status = 'pending'"
)


class GroupRace(IntegrityError):
    """A group another transaction opened was closed before this one could join it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None, Exception(message))


def labels_json(labels: Sequence[tuple[str, str]]) -> str:
    """A group's labels as its `labels` column holds them."""
    return json.dumps([list(kv) for kv in labels], ensure_ascii=False)


def hand_over(
    sql: Sql,
    *,
    old_id: str,
    route_id: str,
    group_key: str,
    labels: str,
    receiver: str,
    timing: Timing,
    now: datetime,
    last_report_at: datetime | None,
    rules_version: str,
) -> str | None:
    """Close the open group `old_id` silently and open its successor for `receiver`, due a
    group_wait from `now`, with every report the old one holds (see CLOSE_HANDED_OVER).
    The successor's id, or None if the old group was closed already (by another
    transaction's hand-over: the caller looks again for the open group)."""
    new_id = secrets.token_hex(16)
    reason = f"receiver changed to {receiver}"
    closed = sql.count(
        CLOSE_HANDED_OVER,
        {"id": old_id, "now": sql.at(now), "pending": False, "reason": reason, "to": new_id},
    )
    if not closed:
        return None
    opened = sql.count(
        INSERT_SUCCESSOR,
        {
            "id": new_id,
            "route_id": route_id,
            "group_key": group_key,
            "labels": labels,
            "receiver": receiver,
            "created_at": sql.at(now),
            "next_flush_at": sql.at(first_flush(now, timing)),
            "pending": True,
            "group_interval_s": timing.group_interval.total_seconds(),
            "rules_version": rules_version,
            "last_report_at": sql.at(last_report_at) if last_report_at is not None else None,
            "repeat_interval_s": timing.repeat_interval.total_seconds(),
            "close_after_s": timing.close_after.total_seconds(),
            "escalate_after_s": _seconds(timing.escalate_after),
            "took_over_from": old_id,
        },
    )
    if not opened:  # the old group was open, so no other can be: a broken invariant
        raise GroupRace(f"group {route_id} {group_key} open twice while handing {old_id} over")
    sql.run(COPY_GROUP_REPORTS, {"new": new_id, "old": old_id})
    sql.run(SUPERSEDE_HANDED_OVER, {"old": old_id, "reason": f"{reason}: not sent"})
    log.info("group %s (route %s %s) handed over to %s as group %s", old_id, route_id,
             group_key, receiver, new_id)  # fmt: skip
    return new_id


class HandOver(NamedTuple):
    """An open group handed over to its route's new receiver."""

    old_id: str
    new_id: str
    route_id: str
    old_receiver: str
    new_receiver: str


OPEN_GROUPS = (
    "SELECT id, route_id, group_key, labels, receiver, last_report_at FROM alert_groups "
    "WHERE closed_at IS NULL ORDER BY route_id, group_key"
)


def hand_over_groups(
    conn: Connection,
    *,
    receivers: dict[str, tuple[str, Timing]],
    now: datetime,
    rules_version: str,
) -> list[HandOver]:
    """Hand over every open group whose route `receivers` gives another receiver (a rules
    edit); the hand-overs made."""
    # In the write path's order of groups: two instances wait for each other, not deadlock.
    sql = dbapi.on(conn)
    moved = []
    for group_id, route_id, group_key, labels, receiver, last_report_at in sql.rows(
        OPEN_GROUPS, {}
    ):
        wanted = receivers.get(route_id)
        if wanted is None or wanted[0] == receiver:
            continue
        new_receiver, timing = wanted
        new_id = hand_over(
            sql, old_id=group_id, route_id=route_id, group_key=group_key,
            labels=labels_json(_labels(_json_list(labels))), receiver=new_receiver,
            timing=timing, now=now, last_report_at=sql.time(last_report_at),
            rules_version=rules_version,
        )  # fmt: skip
        if new_id is not None:  # else another instance handed it over first
            moved.append(HandOver(group_id, new_id, route_id, receiver, new_receiver))
    return moved


def _seconds(span: timedelta | None) -> float | None:
    return span.total_seconds() if span is not None else None
