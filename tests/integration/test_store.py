"""The store on real SQLite files and a real PostgreSQL: revisions, groups, the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from dispatcher.group import Counted, GroupTally, GroupTarget, Timing
from dispatcher.incidents import MergeRule
from dispatcher.model import Casualties, Point, Report
from dispatcher.store import db, writes
from dispatcher.store.repo import LastUpdate, OutboxItem, Outcome, Store
from dispatcher.store.tables import include_object, metadata
from dispatcher.store.writes import ReportWrite, SaveResult
from tests.support.databases import _create_pg_database, _drop_pg_database, postgres_url
from tests.support.waiting import until

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TIMING = Timing(group_wait=30 * S, group_interval=120 * S, repeat_interval=3600 * S)
TARGET = GroupTarget("root", (("region", "SY07"),), "idleb-center", TIMING)


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


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    engine = db.create_engine(db_url)
    await db.upgrade(engine)
    s = Store(engine, writer=db.create_writer(db_url), reader=db.create_reader(db_url))
    yield s
    await s.close()


async def save(store: Store, r: Report, now: datetime = T0) -> SaveResult:
    return await store.save_report(r, targets=[TARGET], now=now, key_name="k", rules_version="v1")


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


async def test_revisions_duplicates_and_stale(store: Store) -> None:
    first = await save(store, report())
    assert first.outcome == "created"
    again = await save(store, report())
    assert again.outcome == "duplicate"
    assert again.stored.pk == first.stored.pk
    newer = await save(store, report(revision=2, killed=3), T0 + S)
    assert newer.outcome == "created"
    late_retry = await save(store, report(revision=1))
    assert late_retry.outcome == "duplicate", "a delayed retry of a held revision"
    assert late_retry.stored.report.revision == 1
    await save(store, report(revision=4, killed=4), T0 + 2 * S)
    stale = await save(store, report(revision=3, killed=7))
    assert stale.outcome == "stale", "a revision older than the newest, never seen"
    assert stale.stored.report.revision == 4
    revisions = await store.report_revisions("obs", "r1")
    assert [(r.report.revision, r.report.casualties.killed) for r in revisions] == [
        (1, 1),
        (2, 3),
        (4, 4),
    ]
    assert revisions[0].received_at == T0
    assert await store.count_reports() == 3


async def test_a_group_waits_then_sends_once_per_interval(store: Store) -> None:
    created = await save(store, report("a"))
    (group_id,) = created.group_ids
    assert await store.due_groups(T0 + 29 * S) == []
    (due,) = await store.due_groups(T0 + 30 * S)
    assert due.id == group_id
    assert due.labels == (("region", "SY07"),)
    item = OutboxItem("lead", None, "console", "t", "b", {"group_id": group_id}, group_id, "normal")
    assert await store.record_update(
        due, now=T0 + 30 * S, summary={"n": 1}, outbox=[item], rules_version="v1"
    )
    assert not await store.record_update(
        due, now=T0 + 30 * S, summary={"n": 1}, outbox=[item], rules_version="v1"
    ), "the same update cannot be claimed twice"
    second = await save(store, report("b"), T0 + 40 * S)
    assert second.group_ids == (group_id,), "the open group takes the next report"
    assert await store.due_groups(T0 + 149 * S) == []
    (due,) = await store.due_groups(T0 + 150 * S)
    assert due.seq == 1
    assert len(await store.group_reports(group_id)) == 2
    last = await store.last_update(group_id)
    assert last is not None
    assert last[0] == T0 + 30 * S


async def test_devices_move_between_leaders_and_outbox_records_outcomes(store: Store) -> None:
    dev, created = await store.register_device(
        leader_id="a", token="tok-" + "x" * 30, platform="android", locale="ar", now=T0
    )
    assert created
    moved, created = await store.register_device(
        leader_id="b", token="tok-" + "x" * 30, platform="ios", locale="en", now=T0 + S
    )
    assert not created
    assert moved.id == dev.id
    assert [d.leader_id for d in await store.active_devices(["a", "b"])] == ["b"]

    created_report = await save(store, report())
    (group,) = await store.due_groups(T0 + 30 * S)
    item = OutboxItem("b", dev.id, "fcm", "t", "b", {"k": "v"}, group.id, "normal")
    await store.record_update(group, now=T0 + 30 * S, summary={}, outbox=[item], rules_version="v1")
    (pending,) = await store.claim_pushes(T0 + 30 * S, lease=60 * S)
    assert pending.token == "tok-" + "x" * 30
    assert pending.group_id == created_report.group_ids[0]
    await store.record_outcomes(
        [Outcome(pending.id, "failed", error="UNREGISTERED: gone", disable_device=True)],
        now=T0 + 31 * S,
        device_of={pending.id: dev.id},
    )
    assert await store.claim_pushes(T0 + 40 * S, lease=60 * S) == []
    assert await store.active_devices(["b"]) == [], "a dead token is disabled"
    assert await store.notification_counts() == {"failed": 1}


async def test_a_web_push_subscription_s_keys_reach_the_sender(store: Store) -> None:
    endpoint = "https://updates.push.services.mozilla.com/wpush/v2/" + "x" * 40
    dev, _ = await store.register_device(leader_id="b", token=endpoint, platform="web",
                                         locale="en", now=T0, p256dh="BPk", auth="au")  # fmt: skip
    assert (dev.p256dh, dev.auth) == ("BPk", "au")
    await save(store, report())
    (group,) = await store.due_groups(T0 + 30 * S)
    item = OutboxItem("b", dev.id, "webpush", "t", "b", {"k": "v"}, group.id, "high")
    await store.record_update(group, now=T0 + 30 * S, summary={}, outbox=[item], rules_version="v1")
    (pending,) = await store.claim_pushes(T0 + 30 * S, lease=60 * S)
    assert (pending.channel, pending.platform, pending.token) == ("webpush", "web", endpoint)
    assert (pending.p256dh, pending.auth) == ("BPk", "au")


async def test_a_service_key_once_kept_is_never_replaced(store: Store) -> None:
    assert await store.keep_service_key("vapid", "first", now=T0) == "first"
    assert await store.keep_service_key("vapid", "second", now=T0 + S) == "first"
    assert await store.keep_service_key("other", "x", now=T0) == "x"


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


async def test_reports_of_one_strike_share_an_incident(store: Store) -> None:
    first = await save(store, sighting("o-1", "observatory", killed=3))
    assert first.stored.report.incident is not None
    assert not first.merged
    second = await save(store, sighting("s-9", "spotter", lat=35.932, killed=2))
    assert second.merged, "another source, 220 m away, same time: the same strike"
    assert second.stored.report.incident == first.stored.report.incident
    same_source = await save(store, sighting("o-2", "observatory"))
    assert same_source.stored.report.incident != first.stored.report.incident
    far = await save(store, sighting("f-1", "field-app", lat=35.95))
    assert far.stored.report.incident not in {
        first.stored.report.incident,
        same_source.stored.report.incident,
    }, "2 km away is another strike"
    revised = await save(store, sighting("s-9", "spotter", revision=2, lat=35.99))
    assert revised.stored.report.incident == first.stored.report.incident, "a revision stays"
    named = await save(store, sighting("n-1", "hospital", incident="idleb-market-strike"))
    again = await save(store, sighting("n-2", "radio", lat=36.2, incident="idleb-market-strike"))
    assert named.stored.report.incident == again.stored.report.incident == "idleb-market-strike"
    assert again.merged


async def test_a_batch_merges_with_stored_strikes_and_with_its_own(store: Store) -> None:
    """The merge rule for a batch is the one for reports sent one by one: against strikes
    already stored (looked up for the whole batch at once on PostgreSQL) and against the
    batch's own earlier reports."""

    async def batch(*items: Report) -> list[str | None]:
        saved = await store.save_reports(
            [(r, [TARGET]) for r in items], now=T0, key_name="k", rules_version="v1"
        )
        return [s.stored.report.incident for s in saved]

    north, south = await batch(sighting("a-1", "spotter", lat=35.93),
                               sighting("b-1", "spotter", lat=35.80))  # fmt: skip
    assert north != south
    joined, same_source, fresh, fresh_again, shelled = await batch(
        sighting("a-2", "radio", lat=35.931),  # 110 m from a-1
        sighting("a-3", "spotter", lat=35.932),  # a-1's source again: another strike
        sighting("c-1", "radio", lat=36.10),
        sighting("c-2", "hospital", lat=36.101),  # joins c-1, made in this batch
        sighting("b-2", "radio", lat=35.80, kind="shelling"),  # another kind
    )
    assert joined == north
    assert same_source not in {north, south}
    assert fresh_again == fresh, "two sources of a strike new in the batch"
    assert fresh not in {north, south}
    assert shelled not in {north, south, fresh}


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


async def test_a_held_revision_sent_with_other_content_is_a_conflict(store: Store) -> None:
    """The same (source, id, revision) with other counts is refused, alone or within a
    batch, and nothing is written; what the service derived (the placed region) is not
    content, so a resend placed elsewhere by edited rules is still a retry."""
    first = await save(store, report(killed=3))
    conflict = await save(store, report(killed=5))
    assert conflict.outcome == "conflict"
    assert [(d.field, d.stored, d.sent) for d in conflict.differences] == [
        ("casualties.killed", "3", "5")
    ]
    assert conflict.stored.pk == first.stored.pk
    assert conflict.stored.report.casualties.killed == 3, "the stored revision is unchanged"
    assert conflict.newest == 1
    placed_elsewhere = await save(store, report(killed=3)._replace(region="SY0700"))
    assert placed_elsewhere.outcome == "duplicate"
    moved = await save(store, report(killed=3)._replace(occurred_at=T0 - 59 * S))
    assert moved.outcome == "conflict"
    assert [d.field for d in moved.differences] == ["occurred_at"]

    results = await store.save_reports(
        [
            (report("b1", killed=1), [TARGET]),
            (report("b1", killed=2), [TARGET]),  # the same revision, otherwise, in one batch
            (report("b1", killed=1), [TARGET]),
            (report(killed=3, revision=2), [TARGET]),
            (report(killed=4), [TARGET]),  # revision 1 again, other counts
        ],
        now=T0 + S,
        key_name="k",
        rules_version="v1",
    )
    assert [r.outcome for r in results] == ["created", "conflict", "duplicate", "created",
                                            "conflict"]  # fmt: skip
    assert results[1].stored.report.casualties.killed == 1
    assert results[4].newest == 2, "the newest revision held, to send a correction after"
    assert await store.count_reports() == 3
    assert [r.report.casualties.killed for r in await store.report_revisions("obs", "r1")] == [
        3, 3
    ]  # fmt: skip
    joined = await store.group_reports(results[0].group_ids[0])
    assert sorted((r.id, r.revision) for r in joined) == [("b1", 1), ("r1", 1), ("r1", 2)]


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


async def pending_update(store: Store, device_id: int, now: datetime, **item: object) -> str:
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


async def test_a_newer_update_supersedes_the_pending_one_and_stale_pushes_expire(
    store: Store,
) -> None:
    dev, _ = await store.register_device(
        leader_id="b", token="tok-" + "y" * 30, platform="android", locale="en", now=T0
    )
    await save(store, report("a"))
    group_id = await pending_update(store, dev.id, T0 + 30 * S, expires_at=T0 + 3600 * S)
    await save(store, report("b"), T0 + 100 * S)
    await pending_update(store, dev.id, T0 + 150 * S, expires_at=T0 + 3750 * S)
    (due,) = await store.claim_pushes(T0 + 150 * S, lease=60 * S)
    assert due.seq == 2, "only the latest update of the group goes to the phone"
    older, newer = await store.deliveries(group_id)
    assert (older.status, older.last_error) == ("superseded", "superseded by update 2")
    assert newer.status == "pending"

    # The claim ran out with nothing recorded (the sender died): the push is due again,
    # but not after its time to live.
    (again,) = await store.claim_pushes(T0 + 211 * S, lease=60 * S)
    assert again.id == due.id
    assert await store.claim_pushes(T0 + 3800 * S, lease=60 * S) == []
    (_, expired) = await store.deliveries(group_id)
    assert (expired.status, expired.last_error) == ("expired", "not sent within its time to live")


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


async def test_a_report_that_joins_during_a_flush_is_not_passed_over(store: Store) -> None:
    await save(store, report("a"))
    (read,) = await store.due_groups(T0 + 30 * S)  # a flusher reads the group ...
    await save(store, report("b"), T0 + 31 * S)  # ... a report joins before it writes
    assert await store.record_update(
        read, now=T0 + 32 * S, summary={}, outbox=[], rules_version="v1"
    ), "the update of what was read goes out: a stream of reports cannot starve a group"
    assert not await store.record_update(
        read, now=T0 + 32 * S, summary={}, outbox=[], rules_version="v1"
    ), "a second flusher that read the same group cannot send the same update"
    assert await store.due_groups(T0 + 151 * S) == [], "not within the group_interval"
    (again,) = await store.due_groups(T0 + 152 * S)
    assert (again.pending, again.seq) == (True, 1), "then due again, for the report that joined"
    assert await store.record_update(
        again, now=T0 + 152 * S, summary={}, outbox=[], rules_version="v1"
    )
    assert await store.due_groups(T0 + 1000 * S) == [], "nothing left to send"


async def test_retention_forgets_old_delivery_records_and_dead_phones_only(store: Store) -> None:
    dev, _ = await store.register_device(
        leader_id="b", token="tok-" + "r" * 30, platform="android", locale="en", now=T0
    )
    live, _ = await store.register_device(
        leader_id="b", token="tok-" + "l" * 30, platform="android", locale="en", now=T0
    )
    await save(store, report("a"))
    group_id = await pending_update(store, dev.id, T0 + 30 * S)
    (push,) = await store.claim_pushes(T0 + 30 * S, lease=60 * S)
    await store.record_outcomes(
        [Outcome(push.id, "failed", error="UNREGISTERED: gone", disable_device=True)],
        now=T0 + 31 * S,
        device_of={push.id: dev.id},
    )
    group = await store.get_group(group_id)
    assert group is not None
    assert await store.record_update(
        group, now=T0 + 40 * S, summary={}, outbox=[], rules_version="v1", close=True
    )
    assert await store.forget(closed_before=T0, disabled_before=T0) == (0, 0), "too recent"
    assert await store.forget(closed_before=T0 + 3600 * S, disabled_before=T0 + 3600 * S) == (
        1,
        1,
    )
    assert await store.deliveries(group_id) == []
    assert [d.id for d in await store.active_devices(["b"])] == [live.id], "live phones stay"
    assert len(await store.report_revisions("obs", "a")) == 1, "reports are kept for good"


async def test_a_flush_reads_only_the_reports_that_joined_since_it_last_counted(
    store: Store,
) -> None:
    await save(store, report("a"))
    await save(store, report("b"))
    (group,) = await store.due_groups(T0 + 30 * S)
    first = await store.flush_reads(group.id, leader_ids=[], silences_ending_after=T0, today=None)
    assert first is not None
    assert first.whole
    assert sorted(r.id for _, r in first.reports) == ["a", "b"]
    await save(store, report("a", revision=2, killed=4), T0 + 40 * S)
    tally = GroupTally()
    tally.add(first.reports)
    counted = tally.counted
    later = await store.flush_reads(
        group.id, leader_ids=[], silences_ending_after=T0, today=None, counted=counted
    )
    assert later is not None
    assert not later.whole
    assert [(r.id, r.revision, r.casualties.killed) for _, r in later.reports] == [("a", 2, 4)]
    gone = counted._replace(rows=counted.rows + 1, pk_sum=counted.pk_sum + 10**9)
    stale = await store.flush_reads(
        group.id, leader_ids=[], silences_ending_after=T0, today=None, counted=gone
    )
    assert stale is not None
    assert stale.whole, "a row it counted is gone: read them all again"
    assert len(stale.reports) == 3
    # On PostgreSQL a row with a lower id can commit after one with a higher id was counted.
    (low, _), (high, _) = sorted(first.reports)
    late = GroupTally()
    late.add([(pk, r) for pk, r in first.reports if pk == high])
    behind = await store.flush_reads(
        group.id, leader_ids=[], silences_ending_after=T0, today=None, counted=late.counted
    )
    assert behind is not None
    assert behind.whole, "a row below the highest counted was not counted: read them all"
    assert low in {pk for pk, _ in behind.reports}


async def test_a_flush_reads_the_last_update_s_state_unless_its_tally_was_told_of_it(
    store: Store,
) -> None:
    await save(store, report("a"))
    (group,) = await store.due_groups(T0 + 30 * S)
    state = {"inc-a": [1, 2, 0, 0, 0]}
    assert await store.record_update(
        group, now=T0 + 30 * S, summary={"state": state}, outbox=[], rules_version="v1"
    )
    first = await store.flush_reads(group.id, leader_ids=[], silences_ending_after=T0, today=None)
    assert first is not None
    assert first.last == (1, T0 + 30 * S, state), "no tally yet: the state is read"
    tally = GroupTally()
    tally.add(first.reports)

    async def last(told_seq: int, counted: Counted) -> LastUpdate | None:
        read = await store.flush_reads(
            group.id, leader_ids=[], silences_ending_after=T0, today=None,
            counted=counted, told_seq=told_seq,
        )  # fmt: skip
        assert read is not None
        return read.last

    assert await last(1, tally.counted) == (1, T0 + 30 * S, None), "the tally holds it"
    assert await last(0, tally.counted) == (1, T0 + 30 * S, state), "told of an older one"
    gone = tally.counted._replace(rows=2)
    assert await last(1, gone) == (1, T0 + 30 * S, state), "read whole: a new tally needs it"


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


M325 = 325 / 111_195  # degrees of latitude


@pytest.mark.parametrize("hours_ago", [0, 7], ids=["in-memory", "from-the-table"])
@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "one-batch"])
async def test_our_team_between_two_observers_gathers_their_incidents(
    store: Store, hours_ago: int, together: bool
) -> None:
    """Two observers 650 m apart made two incidents; our team's report between them joins
    one and the other is merged into it: its reports count there, the groups holding them
    count again, and the incident is listed once with every report."""
    at = T0 - timedelta(hours=hours_ago)
    observers = [
        sighting("o-1", "observatory", lat=35.93 + M325, killed=5, occurred_at=at, tier="trusted"),
        sighting("w-1", "witness", lat=35.93 - M325, killed=2, occurred_at=at),
    ]
    team = sighting("t-1", "civil-defence", lat=35.9301, killed=4, occurred_at=at, tier="own")
    if together:
        saved = await store.save_reports(
            [(r, [TARGET]) for r in (*observers, team)], now=T0, key_name="k", rules_version="v1"
        )
    else:
        saved = [await save(store, r) for r in (*observers, team)]
    north, south, ours = (s.stored.report.incident for s in saved)
    assert north != south
    assert ours in {north, south}
    group_id = saved[0].group_ids[0]
    counted_in = {r.source: r.incident for r in await store.group_reports(group_id)}
    assert counted_in == {"observatory": ours, "witness": ours, "civil-defence": ours}
    (listed,) = await store.list_incidents(
        regions=None, kind=None, since=None, limit=10, before=None
    )
    assert listed.id == ours
    assert {r.report.source for r in listed.reports} == {"observatory", "witness", "civil-defence"}
    group = await store.get_group(group_id)
    assert group is not None
    assert group.recount == (0 if together else 1), "its reports were counted apart before"
    # A fourth observer near where the absorbed incident was joins the team's incident.
    late = await save(store, sighting("r-1", "radio", lat=35.93 - M325, occurred_at=at))
    assert late.stored.report.incident == ours


async def test_our_team_does_not_gather_another_team_s_incident_or_a_source_s_second(
    store: Store,
) -> None:
    """Two of our teams 1.3 km apart saw two strikes, and one observer reporting twice,
    650 m apart, saw two events: a team between them gathers neither."""
    a = await save(store, sighting("a-1", "civil-defence-a", lat=35.93 + 2 * M325, tier="own"))
    b = await save(store, sighting("b-1", "civil-defence-b", lat=35.93 - 2 * M325, tier="own"))
    c = await save(store, sighting("c-1", "civil-defence-c", lat=35.9301, tier="own"))
    assert c.stored.report.incident == a.stored.report.incident, "the nearest anchor"
    listed = await store.list_incidents(regions=None, kind=None, since=None, limit=10, before=None)
    assert {i.id for i in listed} == {a.stored.report.incident, b.stored.report.incident}

    later = T0 + 20 * timedelta(minutes=1)
    w1 = await save(store, sighting("w-1", "witness", lat=35.93 + M325, occurred_at=later))
    w2 = await save(store, sighting("w-2", "witness", lat=35.93 - M325, occurred_at=later))
    team = await save(store, sighting("t-1", "civil-defence-d", lat=35.9301, occurred_at=later,
                                      tier="own"))  # fmt: skip
    assert team.stored.report.incident == w1.stored.report.incident
    listed = await store.list_incidents(regions=None, kind=None, since=later, limit=10, before=None)
    assert {i.id for i in listed} == {w1.stored.report.incident, w2.stored.report.incident}


async def test_one_batch_revises_and_merges_within_its_own_transaction(store: Store) -> None:
    """A batch holding a report, its correction and a second sighting of the same strike:
    each sees the ones before it, though none is committed yet."""
    results = await store.save_reports(
        [
            (sighting("o-1", "observatory", killed=2), [TARGET]),
            (sighting("o-1", "observatory", killed=5, revision=2), [TARGET]),
            (sighting("s-1", "spotter", lat=35.931, killed=4), [TARGET]),
            (sighting("s-2", "spotter", lat=35.9305), [TARGET]),
            (sighting("o-1", "observatory", killed=2), [TARGET]),
        ],
        now=T0,
        key_name="k",
        rules_version="v1",
    )
    first, revised, second, same_source, retry = results
    assert [r.outcome for r in results] == ["created", "created", "created", "created",
                                            "duplicate"]  # fmt: skip
    assert revised.stored.report.incident == first.stored.report.incident
    assert second.merged
    assert second.stored.report.incident == first.stored.report.incident
    assert same_source.stored.report.incident != first.stored.report.incident
    assert retry.stored.report.revision == 1
    assert retry.stored.pk == first.stored.pk
    assert len({r.group_ids for r in results[:4]}) == 1, "one group for all of them"
    assert await store.count_reports() == 4


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


HARIM = GroupTarget("root", (("region", "SY07"),), "harim-center", TIMING)


async def test_a_report_routed_to_another_receiver_hands_the_open_group_over(
    store: Store,
) -> None:
    """The rules moved the route to Harim's team: the next report closes Idleb's group
    without a word (its push not yet sent is superseded) and a new group for Harim holds
    every report, due a group_wait later; reports after it join that group."""
    dev, _ = await store.register_device(
        leader_id="b", token="tok-" + "h" * 30, platform="android", locale="en", now=T0
    )
    first = await save(store, report("r1", killed=2))
    await save(store, report("r2", killed=1))
    (old_id,) = first.group_ids
    assert await pending_update(store, dev.id, T0 + 30 * S) == old_id

    later = T0 + 40 * S
    moved = await store.save_report(
        report("r3", killed=4), targets=[HARIM], now=later, key_name="k", rules_version="v2"
    )
    (new_id,) = moved.group_ids
    assert new_id != old_id
    old, new = await store.get_group(old_id), await store.get_group(new_id)
    assert old is not None
    assert new is not None
    assert (old.receiver, old.closed_at, old.closed_reason, old.handed_over_to) == (
        "idleb-center", later, "receiver changed to harim-center", new_id,
    )  # fmt: skip
    assert old.seq == 1, "no closing update: the old team is told nothing"
    assert (new.receiver, new.took_over_from, new.seq, new.pending) == (
        "harim-center", old_id, 0, True,
    )  # fmt: skip
    assert new.next_flush_at == later + TIMING.group_wait
    assert new.created_at == later
    assert sorted(r.id for r in await store.group_reports(new_id)) == ["r1", "r2", "r3"]
    assert sorted(r.id for r in await store.group_reports(old_id)) == ["r1", "r2"]
    (push,) = await store.deliveries(old_id)
    assert (push.status, push.last_error) == (
        "superseded",
        "receiver changed to harim-center: not sent",
    )
    assert [g.id for g in await store.due_groups(later + TIMING.group_wait)] == [new_id]

    joined = await store.save_report(
        report("r4"), targets=[HARIM], now=later + S, key_name="k", rules_version="v2"
    )
    assert joined.group_ids == (new_id,), "the next report joins the new group"
    back = await save(store, report("r5"), later + 2 * S)
    assert back.group_ids not in ((old_id,), (new_id,)), "moved back: handed over again"
    assert sorted(r.id for r in await store.group_reports(back.group_ids[0])) == [
        "r1", "r2", "r3", "r4", "r5",
    ]  # fmt: skip


async def test_applying_rules_hands_over_the_groups_of_routes_given_another_receiver(
    store: Store,
) -> None:
    """When a rule set is applied: the open groups of a route with another receiver move,
    those whose receiver is unchanged and those of routes gone from the rules stay; on
    SQLite the writer then forgets the groups it remembered, so the next report joins the
    new group."""
    gone = GroupTarget("gone", (("region", "SY07"),), "idleb-center", TIMING)
    kept = GroupTarget("kept", (("region", "SY07"),), "idleb-center", TIMING)
    (old_id, gone_id, kept_id) = (await store.save_reports(
        [(report("r1", killed=2), [TARGET, gone, kept])], now=T0, key_name="k",
        rules_version="v1",
    ))[0].group_ids  # fmt: skip
    later = T0 + 100 * S
    new_timing = Timing(group_wait=10 * S, group_interval=60 * S, repeat_interval=600 * S)
    receivers = {"root": ("harim-center", new_timing), "kept": ("idleb-center", TIMING)}
    (moved,) = await store.hand_over_groups(receivers, now=later, rules_version="v2")
    assert (moved.old_id, moved.route_id, moved.old_receiver, moved.new_receiver) == (
        old_id, "root", "idleb-center", "harim-center",
    )  # fmt: skip
    assert await store.hand_over_groups(receivers, now=later, rules_version="v2") == [], (
        "applied again: nothing more moves"
    )
    new = await store.get_group(moved.new_id)
    assert new is not None
    assert new.labels == (("region", "SY07"),)
    assert new.last_report_at == T0, "its reports came when they came"
    assert (new.next_flush_at, new.group_interval) == (later + 10 * S, 60 * S)
    assert [r.id for r in await store.group_reports(moved.new_id)] == ["r1"]
    for still in (gone_id, kept_id):
        group = await store.get_group(still)
        assert group is not None
        assert group.closed_at is None
    after = await store.save_report(
        report("r2"), targets=[HARIM], now=later + S, key_name="k", rules_version="v2"
    )
    assert after.group_ids == (moved.new_id,)


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
                    lambda c: writes.ReportWriter(writes.Sql(c), MergeRule()).save([request])
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
