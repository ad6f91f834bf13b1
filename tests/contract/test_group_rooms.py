"""One contract for the alert groups' room, kept by the in-memory store, SQLite and
PostgreSQL: when groups are due, what a flush reads, updates written once, the hand-over
to a route's new receiver, acknowledgements, and the groups as leaders and the desk see them."""

from __future__ import annotations

from dispatcher.group import Counted, GroupTally, GroupTarget, Timing
from dispatcher.store.rows import LastUpdate, OutboxItem
from tests.contract.conftest import Rooms
from tests.contract.strikes import HARIM, T0, TARGET, TIMING, S, pending_update, report, save


async def test_a_group_waits_then_sends_once_per_interval(rooms: Rooms) -> None:
    created = await save(rooms, report("a"))
    (group_id,) = created.group_ids
    assert await rooms.due_groups(T0 + 29 * S) == []
    (due,) = await rooms.due_groups(T0 + 30 * S)
    assert due.id == group_id
    assert due.labels == (("region", "SY07"),)
    item = OutboxItem("lead", None, "console", "t", "b", {"group_id": group_id}, group_id, "normal")
    assert await rooms.record_update(
        due, now=T0 + 30 * S, summary={"n": 1}, outbox=[item], rules_version="v1"
    )
    assert not await rooms.record_update(
        due, now=T0 + 30 * S, summary={"n": 1}, outbox=[item], rules_version="v1"
    ), "the same update cannot be claimed twice"
    second = await save(rooms, report("b"), T0 + 40 * S)
    assert second.group_ids == (group_id,), "the open group takes the next report"
    assert await rooms.due_groups(T0 + 149 * S) == []
    (due,) = await rooms.due_groups(T0 + 150 * S)
    assert due.seq == 1
    assert len(await rooms.group_reports(group_id)) == 2
    read = await rooms.flush_reads(group_id, leader_ids=[], silences_ending_after=T0, today=None)
    assert read is not None
    assert read.last == (1, T0 + 30 * S, {}), "the update written, with no state in it"



async def test_a_report_that_joins_during_a_flush_is_not_passed_over(rooms: Rooms) -> None:
    await save(rooms, report("a"))
    (read,) = await rooms.due_groups(T0 + 30 * S)  # a flusher reads the group ...
    await save(rooms, report("b"), T0 + 31 * S)  # ... a report joins before it writes
    assert await rooms.record_update(
        read, now=T0 + 32 * S, summary={}, outbox=[], rules_version="v1"
    ), "the update of what was read goes out: a stream of reports cannot starve a group"
    assert not await rooms.record_update(
        read, now=T0 + 32 * S, summary={}, outbox=[], rules_version="v1"
    ), "a second flusher that read the same group cannot send the same update"
    assert await rooms.due_groups(T0 + 151 * S) == [], "not within the group_interval"
    (again,) = await rooms.due_groups(T0 + 152 * S)
    assert (again.pending, again.seq) == (True, 1), "then due again, for the report that joined"
    assert await rooms.record_update(
        again, now=T0 + 152 * S, summary={}, outbox=[], rules_version="v1"
    )
    assert await rooms.due_groups(T0 + 1000 * S) == [], "nothing left to send"


async def test_a_flush_reads_only_the_reports_that_joined_since_it_last_counted(
    rooms: Rooms,
) -> None:
    await save(rooms, report("a"))
    await save(rooms, report("b"))
    (group,) = await rooms.due_groups(T0 + 30 * S)
    first = await rooms.flush_reads(group.id, leader_ids=[], silences_ending_after=T0, today=None)
    assert first is not None
    assert first.whole
    assert sorted(r.id for _, r in first.reports) == ["a", "b"]
    await save(rooms, report("a", revision=2, killed=4), T0 + 40 * S)
    tally = GroupTally()
    tally.add(first.reports)
    counted = tally.counted
    later = await rooms.flush_reads(
        group.id, leader_ids=[], silences_ending_after=T0, today=None, counted=counted
    )
    assert later is not None
    assert not later.whole
    assert [(r.id, r.revision, r.casualties.killed) for _, r in later.reports] == [("a", 2, 4)]
    gone = counted._replace(rows=counted.rows + 1, pk_sum=counted.pk_sum + 10**9)
    stale = await rooms.flush_reads(
        group.id, leader_ids=[], silences_ending_after=T0, today=None, counted=gone
    )
    assert stale is not None
    assert stale.whole, "a row it counted is gone: read them all again"
    assert len(stale.reports) == 3
    # On PostgreSQL a row with a lower id can commit after one with a higher id was counted.
    (low, _), (high, _) = sorted(first.reports)
    late = GroupTally()
    late.add([(pk, r) for pk, r in first.reports if pk == high])
    behind = await rooms.flush_reads(
        group.id, leader_ids=[], silences_ending_after=T0, today=None, counted=late.counted
    )
    assert behind is not None
    assert behind.whole, "a row below the highest counted was not counted: read them all"
    assert low in {pk for pk, _ in behind.reports}


async def test_a_flush_reads_the_last_update_s_state_unless_its_tally_was_told_of_it(
    rooms: Rooms,
) -> None:
    await save(rooms, report("a"))
    (group,) = await rooms.due_groups(T0 + 30 * S)
    state = {"inc-a": [1, 2, 0, 0, 0]}
    assert await rooms.record_update(
        group, now=T0 + 30 * S, summary={"state": state}, outbox=[], rules_version="v1"
    )
    first = await rooms.flush_reads(group.id, leader_ids=[], silences_ending_after=T0, today=None)
    assert first is not None
    assert first.last == (1, T0 + 30 * S, state), "no tally yet: the state is read"
    tally = GroupTally()
    tally.add(first.reports)

    async def last(told_seq: int, counted: Counted) -> LastUpdate | None:
        read = await rooms.flush_reads(
            group.id, leader_ids=[], silences_ending_after=T0, today=None,
            counted=counted, told_seq=told_seq,
        )  # fmt: skip
        assert read is not None
        return read.last

    assert await last(1, tally.counted) == (1, T0 + 30 * S, None), "the tally holds it"
    assert await last(0, tally.counted) == (1, T0 + 30 * S, state), "told of an older one"
    gone = tally.counted._replace(rows=2)
    assert await last(1, gone) == (1, T0 + 30 * S, state), "read whole: a new tally needs it"


async def test_a_report_routed_to_another_receiver_hands_the_open_group_over(
    rooms: Rooms,
) -> None:
    """The rules moved the route to Harim's team: the next report closes Idleb's group
    without a word (its push not yet sent is superseded) and a new group for Harim holds
    every report, due a group_wait later; reports after it join that group."""
    dev, _ = await rooms.register_device(
        leader_id="b", token="tok-" + "h" * 30, platform="android", locale="en", now=T0
    )
    first = await save(rooms, report("r1", killed=2))
    await save(rooms, report("r2", killed=1))
    (old_id,) = first.group_ids
    assert await pending_update(rooms, dev.id, T0 + 30 * S) == old_id

    later = T0 + 40 * S
    moved = await rooms.save_report(
        report("r3", killed=4), targets=[HARIM], now=later, key_name="k", rules_version="v2"
    )
    (new_id,) = moved.group_ids
    assert new_id != old_id
    old, new = await rooms.get_group(old_id), await rooms.get_group(new_id)
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
    assert sorted(r.id for r in await rooms.group_reports(new_id)) == ["r1", "r2", "r3"]
    assert sorted(r.id for r in await rooms.group_reports(old_id)) == ["r1", "r2"]
    (push,) = await rooms.deliveries(old_id)
    assert (push.status, push.last_error) == (
        "superseded",
        "receiver changed to harim-center: not sent",
    )
    assert [g.id for g in await rooms.due_groups(later + TIMING.group_wait)] == [new_id]

    joined = await rooms.save_report(
        report("r4"), targets=[HARIM], now=later + S, key_name="k", rules_version="v2"
    )
    assert joined.group_ids == (new_id,), "the next report joins the new group"
    back = await save(rooms, report("r5"), later + 2 * S)
    assert back.group_ids not in ((old_id,), (new_id,)), "moved back: handed over again"
    assert sorted(r.id for r in await rooms.group_reports(back.group_ids[0])) == [
        "r1", "r2", "r3", "r4", "r5",
    ]  # fmt: skip


async def test_applying_rules_hands_over_the_groups_of_routes_given_another_receiver(
    rooms: Rooms,
) -> None:
    """When a rule set is applied: the open groups of a route with another receiver move,
    those whose receiver is unchanged and those of routes gone from the rules stay; on
    SQLite the writer then forgets the groups it remembered, so the next report joins the
    new group."""
    gone = GroupTarget("gone", (("region", "SY07"),), "idleb-center", TIMING)
    kept = GroupTarget("kept", (("region", "SY07"),), "idleb-center", TIMING)
    (old_id, gone_id, kept_id) = (await rooms.save_reports(
        [(report("r1", killed=2), [TARGET, gone, kept])], now=T0, key_name="k",
        rules_version="v1",
    ))[0].group_ids  # fmt: skip
    later = T0 + 100 * S
    new_timing = Timing(group_wait=10 * S, group_interval=60 * S, repeat_interval=600 * S)
    receivers = {"root": ("harim-center", new_timing), "kept": ("idleb-center", TIMING)}
    (moved,) = await rooms.hand_over_groups(receivers, now=later, rules_version="v2")
    assert (moved.old_id, moved.route_id, moved.old_receiver, moved.new_receiver) == (
        old_id, "root", "idleb-center", "harim-center",
    )  # fmt: skip
    assert await rooms.hand_over_groups(receivers, now=later, rules_version="v2") == [], (
        "applied again: nothing more moves"
    )
    new = await rooms.get_group(moved.new_id)
    assert new is not None
    assert new.labels == (("region", "SY07"),)
    assert new.last_report_at == T0, "its reports came when they came"
    assert (new.next_flush_at, new.group_interval) == (later + 10 * S, 60 * S)
    assert [r.id for r in await rooms.group_reports(moved.new_id)] == ["r1"]
    for still in (gone_id, kept_id):
        group = await rooms.get_group(still)
        assert group is not None
        assert group.closed_at is None
    after = await rooms.save_report(
        report("r2"), targets=[HARIM], now=later + S, key_name="k", rules_version="v2"
    )
    assert after.group_ids == (moved.new_id,)
