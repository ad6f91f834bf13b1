"""What the contract tests store: reports of one strike seen from several places, the
alert group they join, and an update with a push to one phone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.group import GroupTarget, Timing
from dispatcher.model import Casualties, Point, Report
from dispatcher.store.rows import OutboxItem
from dispatcher.store.writer_wire import SaveResult
from tests.contract.conftest import Rooms

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TIMING = Timing(group_wait=30 * S, group_interval=120 * S, repeat_interval=3600 * S)
TARGET = GroupTarget("root", (("region", "SY07"),), "idleb-center", TIMING)
HARIM = GroupTarget("root", (("region", "SY07"),), "harim-center", TIMING)
M325 = 325 / 111_195  # degrees of latitude


def report(rid: str = "r1", *, revision: int = 1, killed: int = 1) -> Report:
    return Report(
        source="obs",
        id=rid,
        kind="airstrike",
        occurred_at=T0 - 60 * S,
        region="SY0703",
        casualties=Casualties(killed=killed),
        revision=revision,
    )


def sighting(
    rid: str, source: str, *, lat: float = 35.93, killed: int = 0, **more: object
) -> Report:
    fields: dict[str, object] = {
        "source": source,
        "id": rid,
        "kind": "airstrike",
        "occurred_at": T0,
        "region": "SY0700",
        "casualties": Casualties(killed=killed),
        "location": Point(lat, 36.63),
    }
    fields.update(more)
    return Report(**fields)  # type: ignore[arg-type]


async def save(store: Rooms, r: Report, now: datetime = T0) -> SaveResult:
    return await store.save_report(r, targets=[TARGET], now=now, key_name="k", rules_version="v1")


async def pending_update(store: Rooms, device_id: int, now: datetime, **item: object) -> str:
    """Record the group's next update with one push to `device_id`; its group id."""
    (group,) = await store.due_groups(now)
    fields: dict[str, Any] = {
        "leader_id": "b", "device_id": device_id, "channel": "fcm", "title": "t", "body": "b",
        "data": {}, "collapse_key": group.id, "priority": "normal",
    }  # fmt: skip
    fields.update(item)
    assert await store.record_update(
        group,
        now=now,
        summary={},
        outbox=[OutboxItem(**fields)],
        rules_version="v1",
    )
    return group.id
