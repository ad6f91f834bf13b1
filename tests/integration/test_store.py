"""The store on real SQLite files and a real PostgreSQL: what only a database shows (its
schema, the write path's transactions, several instances at once). What a caller sees of
each room is the contract suite's (tests/contract/), run on memory too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from dispatcher.group import GroupTarget
from dispatcher.incidents import MergeRule
from dispatcher.model import Casualties, Point, Report
from dispatcher.store import db, dbapi
from dispatcher.store.repo import OutboxItem, Store
from dispatcher.store.report_writer import ReportWriter
from dispatcher.store.tables import include_object, metadata
from dispatcher.store.writer_wire import ReportWrite
from tests.contract.strikes import HARIM, T0, TIMING, S, report, save, sighting
from tests.support.databases import _create_pg_database, _drop_pg_database, postgres_url
from tests.support.waiting import until


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    engine = db.create_engine(db_url)
    await db.upgrade(engine)
    s = Store(engine, writer=db.create_writer(db_url), reader=db.create_reader(db_url))
    yield s
    await s.close()


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn, opts={"include_object": include_object(conn.dialect.name)}
    )
    return list(compare_metadata(context, metadata))


async def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_upgrade_twice_is_a_no_op(store: Store) -> None:
    before, after = await db.upgrade(store.engine)
    assert before == after


async def test_requests_committed_together_fail_alone(store: Store) -> None:
    broken = Report(
        source="obs",
        id="bad",
        kind=None,  # type: ignore[arg-type]
        occurred_at=T0,
        region="SY0703",
    )
    results = await asyncio.gather(
        save(store, report("g1")),
        save(store, broken),
        save(store, report("g2")),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == ["SaveResult", "IntegrityError", "SaveResult"]
    assert await store.count_reports() == 2


async def test_a_strike_seen_in_a_failed_transaction_is_merged_with_as_committed(
    store: Store,
) -> None:
    """The writer remembers the incidents it makes for the merge lookup: those of a shared
    transaction that failed and was committed alone must not linger there."""
    spotted = Report(
        source="spotter", id="s-1", kind="airstrike", occurred_at=T0 - 60 * S,
        region="SY0703", location=Point(35.93, 36.63), casualties=Casualties(killed=2),
    )  # fmt: skip
    broken = Report(source="obs", id="bad", kind=None, occurred_at=T0, region="SY0703")  # type: ignore[arg-type]
    first, failed = await asyncio.gather(
        save(store, spotted), save(store, broken), return_exceptions=True
    )
    assert isinstance(failed, Exception), "the broken write fails"
    assert not isinstance(first, BaseException), "and the other is committed alone"
    second = await save(store, spotted._replace(source="radio", id="r-1"), T0 + S)
    assert second.merged, "the same strike from another source"
    assert second.stored.report.incident == first.stored.report.incident


async def test_a_write_handed_over_is_committed_though_its_caller_goes_away(
    store: Store,
) -> None:
    """A reporter whose link drops after sending: the report it sent is stored all the
    same, and its retry is then a duplicate, not lost."""
    await save(store, report("earlier"))  # the store is writing already
    caller = asyncio.create_task(save(store, report("dropped")))
    await asyncio.sleep(0)  # it has handed the write over
    caller.cancel()
    assert await until(store.count_reports, lambda n: n == 2, what="the report stored") == 2
    again = await save(store, report("dropped"))
    assert again.outcome == "duplicate"


async def test_two_senders_never_claim_one_push(db_url: str, store: Store) -> None:
    devices = [
        (await store.register_device(leader_id="b", token=f"tok-{i:04d}" + "z" * 30,
                                     platform="android", locale="en", now=T0))[0]
        for i in range(40)
    ]  # fmt: skip
    await save(store, report("a"))
    (group,) = await store.due_groups(T0 + 30 * S)
    items = [OutboxItem("b", d.id, "fcm", "t", "b", {}, group.id, "normal") for d in devices]
    await store.record_update(group, now=T0 + 30 * S, summary={}, outbox=items, rules_version="v1")
    # A second instance: its own engine on the same database.
    other = Store(db.create_engine(db_url), writer=db.create_writer(db_url))
    try:
        claims = await asyncio.gather(
            *(s.claim_pushes(T0 + 30 * S, lease=60 * S, limit=7) for s in [store, other] * 4)
        )
    finally:
        await other.close()
    ids = [p.id for claim in claims for p in claim]
    assert len(ids) == len(set(ids)), "no push is claimed twice"
    assert len(ids) == 40


async def test_a_strike_older_than_the_writers_memory_is_merged_from_the_table(
    store: Store,
) -> None:
    """A report of a strike hours ago (a bad link held it): the SQLite writer keeps only
    recent incidents in memory, so this merge is looked up in the table."""
    long_ago = T0 - timedelta(hours=7)
    first = await save(store, sighting("o-1", "observatory", occurred_at=long_ago))
    second = await save(store, sighting("s-1", "spotter", lat=35.931, occurred_at=long_ago))
    assert second.merged
    assert second.stored.report.incident == first.stored.report.incident
    again = await save(store, sighting("s-2", "spotter", lat=35.9305, occurred_at=long_ago))
    assert again.stored.report.incident != first.stored.report.incident, "spotter joined it"


async def test_incidents_another_instance_wrote_are_seen(db_url: str, store: Store) -> None:
    """Two services on one database (on SQLite, a second writer on the file): a strike one
    of them recorded is merged with by the other, and whom it has heard from is known."""
    first = await save(store, sighting("o-1", "observatory"))
    other = Store(db.create_engine(db_url), writer=db.create_writer(db_url))
    try:
        joined = await save(other, sighting("s-1", "spotter", lat=35.931))
    finally:
        await other.close()
    assert joined.merged
    assert joined.stored.report.incident == first.stored.report.incident
    again = await save(store, sighting("s-2", "spotter", lat=35.9305))
    assert again.stored.report.incident != first.stored.report.incident, "spotter joined it"
    third = await save(store, sighting("r-1", "radio", lat=35.9302))
    assert third.stored.report.incident == first.stored.report.incident


async def test_the_spatial_index_of_incidents_is_on_postgresql_only(store: Store) -> None:
    async with store.engine.connect() as conn:
        names = await conn.run_sync(
            lambda c: {i["name"] for i in inspect(c).get_indexes("incidents")}
        )
        dialect = conn.dialect.name
    assert ("ix_incidents_kind_lat" in names) == (dialect == "postgresql")


def surge_batch(round_: int, n: int) -> list[tuple[Report, list[GroupTarget]]]:
    """Batch n of a round: 8 reports, each for two of four districts' groups, met in one
    order by odd batches and in the other by even ones."""
    targets = [
        GroupTarget(f"route-{round_}", (("region", region),), "idleb-center", TIMING)
        for region in ("SY0700", "SY0702", "SY0703", "SY0704")
    ]
    order = targets if n % 2 else targets[::-1]
    return [(report(f"b{round_}-{n}-{i}"), [order[i % 4], order[(i + 1) % 4]]) for i in range(8)]


async def test_batches_opening_and_joining_the_same_groups_at_once_all_commit(
    store: Store, db_url: str
) -> None:
    """A surge starts in several districts at once: concurrent batches open the same new
    groups, and then join them, each batch meeting them in its own order. On PostgreSQL,
    where several instances write at once (one store each here), none may fail (a
    deadlock, a duplicate group) and each group stays one group."""
    postgres = db_url.startswith("postgresql")
    instances = [store]
    if postgres:
        instances += [Store(db.create_engine(db_url), writer=None) for _ in range(7)]
    try:
        for round_ in range(3):
            for phase, first in (("open", 0), ("join", 100)):
                results = await asyncio.gather(
                    *(
                        instances[n % len(instances)].save_reports(
                            surge_batch(round_, first + n), now=T0, key_name="k",
                            rules_version="v1",
                        )
                        for n in range(8)
                    ),
                    return_exceptions=True,
                )  # fmt: skip
                failed = [r for r in results if isinstance(r, BaseException)]
                assert failed == [], f"{phase}: {failed[:1]}"
                ids = {g for saved in results for r in saved for g in r.group_ids}  # type: ignore[union-attr]
                assert len(ids) == 4, f"{phase}: one group per district, not {len(ids)}"
                due = await store.due_groups(T0 + 3600 * S)
                assert {g.id for g in due if g.route_id == f"route-{round_}"} == ids
    finally:
        for other in instances[1:]:
            await other.close()


async def test_instances_handing_one_group_over_at_once_open_one_new_group(
    store: Store, db_url: str
) -> None:
    """Several instances apply the edit and take reports for the moved route at once (a
    second writer on the SQLite file; seven more stores on PostgreSQL): one of them opens
    the new group, every report lands in it, and none fails."""
    postgres = db_url.startswith("postgresql")
    await save(store, report("r0"))
    others = [Store(db.create_engine(db_url), writer=None if postgres else db.create_writer(db_url))
              for _ in range(7 if postgres else 1)]  # fmt: skip
    instances = [store, *others]
    try:
        receivers = {"root": ("harim-center", TIMING)}
        saving = asyncio.gather(
            *(
                instances[n % len(instances)].save_reports(
                    [(report(f"m{n}-{i}"), [HARIM]) for i in range(4)], now=T0 + S,
                    key_name="k", rules_version="v2",
                )
                for n in range(8)
            ),
            return_exceptions=True,
        )  # fmt: skip
        handing = asyncio.gather(
            *(i.hand_over_groups(receivers, now=T0 + S, rules_version="v2") for i in instances),
            return_exceptions=True,
        )
        saved, handed = await asyncio.gather(saving, handing)
    finally:
        for other in others:
            await other.close()
    failed = [r for r in [*saved, *handed] if isinstance(r, BaseException)]
    assert failed == []
    ids = {g for batch in saved if isinstance(batch, list) for r in batch for g in r.group_ids}
    assert len(ids) == 1, "one new group"
    (new_id,) = ids
    moved = [m for found in handed if isinstance(found, list) for m in found]
    assert [m.new_id for m in moved] in ([], [new_id])
    due = await store.due_groups(T0 + 3600 * S)
    assert [(g.id, g.receiver) for g in due] == [(new_id, "harim-center")]
    assert len(await store.group_reports(new_id)) == 33


@pytest.mark.postgres
@pytest.mark.skipif(postgres_url() is None, reason="needs PostgreSQL")
async def test_a_hand_over_waits_for_another_instances_and_joins_its_group(
    tmp_path: Path,
) -> None:
    """Two instances take a report for the moved route at the same moment: the second
    waits on the first's hand-over, finds the group closed when it commits, and joins the
    new group instead of opening another."""
    base = postgres_url()
    assert base is not None
    url, name = await _create_pg_database(base)
    first = Store(db.create_engine(url))
    second = Store(db.create_engine(url))
    try:
        await db.upgrade(first.engine)
        (old_id,) = (await save(first, report("r0"))).group_ids
        request = ReportWrite([(report("a"), [HARIM])], T0 + S, "k", "v2")
        async with first.engine.connect() as conn:
            await conn.begin()
            (([mine],),) = [
                await conn.run_sync(
                    lambda c: ReportWriter(dbapi.on(c), MergeRule()).save([request])
                )
            ]
            assert mine.group_ids != (old_id,)
            theirs_task = asyncio.create_task(
                second.save_report(
                    report("b"), targets=[HARIM], now=T0 + S, key_name="k", rules_version="v2"
                )
            )
            await until(
                lambda: _lock_waits(first), lambda n: n >= 1, what="the second hand-over waiting"
            )
            await conn.commit()
        theirs = await theirs_task
        assert theirs.group_ids == mine.group_ids, "joined the group the first one opened"
        (new_id,) = mine.group_ids
        assert sorted(r.id for r in await first.group_reports(new_id)) == ["a", "b", "r0"]
        due = await first.due_groups(T0 + 3600 * S)
        assert [g.id for g in due] == [new_id]
    finally:
        await first.close()
        await second.close()
        await _drop_pg_database(base, name)


async def _lock_waits(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        )
