"""What the desk reads from the store, on SQLite and PostgreSQL: the map's incidents with
every revision, one incident, open groups, and the rule files kept per version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.group import GroupTarget, Timing
from dispatcher.model import Casualties, Point, Report
from dispatcher.store import db
from dispatcher.store.repo import Store
from dispatcher.web.desk.views import map_incidents

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TARGET = GroupTarget(
    "root",
    (("region", "SY07"),),
    "idleb-center",
    Timing(group_wait=30 * S, group_interval=120 * S, repeat_interval=3600 * S),
)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    engine = db.create_engine(db_url)
    await db.upgrade(engine)
    s = Store(engine, writer=db.create_writer(db_url), reader=db.create_reader(db_url))
    yield s
    await s.close()


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


async def save(store: Store, r: Report, now: datetime = T0) -> None:
    await store.save_report(r, targets=[TARGET], now=now, key_name="k", rules_version="v1")


async def test_the_maps_incidents_carry_every_revision_and_count_as_the_api(
    store: Store,
) -> None:
    await save(store, report("obs", "a", killed=2))
    await save(store, report("cd", "b", killed=5))  # 0 m away, same kind: merged
    await save(store, report("cd", "b", revision=2, status="retracted"), T0 + S)
    elsewhere = report("obs", "far", killed=9)._replace(location=Point(35.5, 36.9))
    await save(store, elsewhere)
    old = report("obs", "old")._replace(occurred_at=T0 - timedelta(days=2), location=None)
    await save(store, old)
    rows = await store.map_incidents(since=T0 - timedelta(hours=1), regions=None, kind=None,
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
    only = await store.map_incidents(since=T0 - timedelta(hours=1), regions=frozenset({"SY02"}),
                                     kind=None, limit=10)  # fmt: skip
    assert only == []
    one = await store.get_incident(merged.id)
    assert one is not None
    assert one.reports == merged.reports
    assert await store.get_incident("nothing") is None


async def test_open_groups_say_what_they_hold(store: Store) -> None:
    await save(store, report("obs", "a"))
    await save(store, report("obs", "a", revision=2, killed=3), T0 + S)
    (og,) = await store.open_groups()
    assert (og.group.receiver, og.regions, og.kinds, og.reports) == (
        "idleb-center",
        ("SY0703",),
        ("airstrike",),
        2,
    )
    assert og.last_update_at is None
    assert og.acks == ()


async def test_rule_files_are_kept_once_and_given_back_by_version(store: Store) -> None:
    outline = '{"type": "FeatureCollection", "features": []}'
    first = {"routes.yaml": "route: 1\n", "boundaries/a.geojson": outline}
    second = {"routes.yaml": "route: 2\n", "boundaries/a.geojson": outline}
    await store.record_rule_set(version="v1", sha256="1" * 64, applied_at=T0, how="start-up",
                                files=first)  # fmt: skip
    await store.record_rule_set(version="v2", sha256="2" * 64, applied_at=T0 + S, how="edit",
                                files=second)  # fmt: skip
    await store.record_rule_set(version="v0", sha256="0" * 64, applied_at=T0 + 2 * S, how="x")
    assert await store.rule_set_files("v1") == first
    assert await store.rule_set_files("v2") == second
    assert await store.rule_set_files("v0") is None
    assert await store.rule_set_files("never") is None
    history = await store.rule_set_history()
    assert [(h["version"], h["files_kept"]) for h in history] == [
        ("v0", False),
        ("v2", True),
        ("v1", True),
    ]
