"""One contract for what the desk reads, kept by the in-memory store, SQLite and
PostgreSQL: the map's incidents with every revision, one incident, open groups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.group import GroupTarget, Timing
from dispatcher.model import Casualties, Point, Report
from dispatcher.web.desk.views import map_incidents
from tests.contract.conftest import Rooms

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TARGET = GroupTarget(
    "root",
    (("region", "SY07"),),
    "idleb-center",
    Timing(group_wait=30 * S, group_interval=120 * S, repeat_interval=3600 * S),
)


def report(source: str, rid: str, *, revision: int = 1, killed: int = 1, **more: object) -> Report:
    return Report(
        source=source,
        id=rid,
        kind="airstrike",
        occurred_at=T0 - 60 * S,
        region="SY0703",
        casualties=Casualties(killed=killed),
        revision=revision,
        location=Point(36.2, 36.6),
        **more,  # type: ignore[arg-type]
    )


async def save(rooms: Rooms, r: Report, now: datetime = T0) -> None:
    await rooms.save_report(r, targets=[TARGET], now=now, key_name="k", rules_version="v1")


async def test_the_maps_incidents_carry_every_revision_and_count_as_the_api(
    rooms: Rooms,
) -> None:
    await save(rooms, report("obs", "a", killed=2))
    await save(rooms, report("cd", "b", killed=5))  # 0 m away, same kind: merged
    await save(rooms, report("cd", "b", revision=2, status="retracted"), T0 + S)
    elsewhere = report("obs", "far", killed=9)._replace(location=Point(35.5, 36.9))
    await save(rooms, elsewhere)
    old = report("obs", "old")._replace(occurred_at=T0 - timedelta(days=2), location=None)
    await save(rooms, old)
    rows = await rooms.map_incidents(since=T0 - timedelta(hours=1), regions=None, kind=None,
                                     limit=10)  # fmt: skip
    assert len(rows) == 2
    merged = next(r for r in rows if len(r.reports) == 3)
    assert [(s.report.source, s.report.id, s.report.revision) for s in merged.reports] == [
        ("obs", "a", 1),
        ("cd", "b", 1),
        ("cd", "b", 2),
    ]
    counted = {m.id: (m.killed, m.live_reports) for m in map_incidents(rows)}
    assert counted[merged.id] == (2, 1)  # the retracted 5 counts for nothing
    assert sorted(counted.values()) == [(2, 1), (9, 1)]
    only = await rooms.map_incidents(since=T0 - timedelta(hours=1), regions=frozenset({"SY02"}),
                                     kind=None, limit=10)  # fmt: skip
    assert only == []
    one = await rooms.get_incident(merged.id)
    assert one is not None
    assert one.reports == merged.reports
    assert await rooms.get_incident("nothing") is None


async def test_open_groups_say_what_they_hold(rooms: Rooms) -> None:
    await save(rooms, report("obs", "a"))
    await save(rooms, report("obs", "a", revision=2, killed=3), T0 + S)
    (og,) = await rooms.open_groups()
    assert (og.group.receiver, og.regions, og.kinds, og.reports) == (
        "idleb-center",
        ("SY0703",),
        ("airstrike",),
        2,
    )
    assert og.last_update_at is None
    assert og.acks == ()
