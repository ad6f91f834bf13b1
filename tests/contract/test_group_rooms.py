"""One contract for the alert groups' room, kept by the in-memory store, SQLite and
PostgreSQL: when groups are due, what a flush reads, updates written once (settled, held,
closed, escalated), acknowledgements, and the groups as leaders see them. The hand-over to
a route's new receiver: test_hand_over_rooms.py."""

from __future__ import annotations

from dispatcher.group import Counted, GroupTally, GroupTarget
from dispatcher.silence import Silence
from dispatcher.store.rows import LastUpdate, OutboxItem
from dispatcher.surge import SurgeState
from tests.contract.conftest import Rooms
from tests.contract.strikes import (
    T0,
    TARGET,
    TIMING,
    S,
    report,
    save,
    sighting,
)


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


async def test_an_acknowledgement_is_told_at_once_and_kept_in_order(rooms: Rooms) -> None:
    (group_id,) = (await save(rooms, report("a"))).group_ids
    (due,) = await rooms.due_groups(T0 + 30 * S)
    assert await rooms.record_update(
        due, now=T0 + 30 * S, summary={}, outbox=[], rules_version="v1", wakeup=T0 + 3630 * S
    )
    assert await rooms.due_groups(T0 + 100 * S) == [], "nothing due until the reminder"
    acked = await rooms.acknowledge(
        group_id, leader_id="b", at=T0 + 100 * S, responding=True, note="on our way"
    )
    assert acked is not None
    assert (acked.pending, acked.next_flush_at, acked.acked_at) == (
        True,
        T0 + 100 * S,
        T0 + 100 * S,
    )
    (due,) = await rooms.due_groups(T0 + 100 * S)
    assert due.id == group_id, "every leader of the team is told who acknowledged"
    again = await rooms.acknowledge(
        group_id, leader_id="c", at=T0 + 90 * S, responding=False, note=None
    )
    assert again is not None
    assert again.acked_at == T0 + 100 * S, "the first acknowledgement stops the reminders"
    assert [(a.leader_id, a.responding, a.note) for a in await rooms.acks(group_id)] == [
        ("c", False, None),
        ("b", True, "on our way"),
    ], "in the order they were made"
    assert await rooms.acknowledge("nope", leader_id="b", at=T0, responding=True, note=None) is None
    assert await rooms.record_update(
        again, now=T0 + 200 * S, summary={}, outbox=[], rules_version="v1", close=True
    )
    closed = await rooms.acknowledge(group_id, leader_id="b", at=T0, responding=True, note=None)
    assert closed is None, "a closed group takes no acknowledgement"


async def test_settle_hold_close_and_escalate_only_the_group_as_it_was_read(rooms: Rooms) -> None:
    (group_id,) = (await save(rooms, report("a"))).group_ids
    (read,) = await rooms.due_groups(T0 + 30 * S)
    assert await rooms.hold(read, until=T0 + 600 * S)
    assert await rooms.due_groups(T0 + 599 * S) == [], "held until the silence ends"
    (held,) = await rooms.due_groups(T0 + 600 * S)
    await save(rooms, report("b"), T0 + 601 * S)
    for moved_on in (
        rooms.settle(held, wakeup=None),
        rooms.hold(held, until=T0 + 900 * S),
        rooms.record_update(held, now=T0 + 601 * S, summary={}, outbox=[], rules_version="v1",
                            close=True),
        rooms.record_update(held, now=T0 + 601 * S, summary={}, outbox=[], rules_version="v1",
                            escalate=True),
    ):  # fmt: skip
        assert not await moved_on, "a report joined since it was read"
    fresh = await rooms.get_group(group_id)
    assert fresh is not None
    assert await rooms.settle(fresh, wakeup=T0 + 3600 * S)
    settled = await rooms.get_group(group_id)
    assert settled is not None
    assert (settled.pending, settled.next_flush_at) == (False, T0 + 3600 * S)
    assert await rooms.record_update(
        settled, now=T0 + 1800 * S, summary={"kind": "escalation"}, outbox=[],
        rules_version="v1", escalate=True, wakeup=T0 + 3600 * S,
    )  # fmt: skip
    escalated = await rooms.get_group(group_id)
    assert escalated is not None
    assert (escalated.seq, escalated.escalated_at, escalated.last_flush_at) == (
        1, T0 + 1800 * S, None,
    ), "an escalation goes to another team: the team's own reminders keep time"  # fmt: skip
    assert await rooms.record_update(
        escalated, now=T0 + 3600 * S, summary={}, outbox=[], rules_version="v1", close=True
    )
    closed = await rooms.get_group(group_id)
    assert closed is not None
    assert (closed.seq, closed.closed_at, closed.pending, closed.next_flush_at) == (
        2, T0 + 3600 * S, False, None,
    )  # fmt: skip
    assert await rooms.due_groups(T0 + 10**6 * S) == []
    assert [g.group.id for g in await rooms.open_groups()] == []
    after = await save(rooms, report("c"), T0 + 3700 * S)
    assert after.group_ids != (group_id,), "a report after the closing opens a new group"


async def test_expiring_a_silence_wakes_the_groups_it_held(rooms: Rooms) -> None:
    (group_id,) = (await save(rooms, report("a"))).group_ids
    (read,) = await rooms.due_groups(T0 + 30 * S)
    silence = Silence(
        id="s1", regions=frozenset({"SY07"}), receivers=frozenset(), routes=frozenset(),
        kinds=frozenset(), starts_at=T0, ends_at=T0 + 7200 * S, author="op", reason="drill",
        created_at=T0,
    )  # fmt: skip
    await rooms.add_silence(silence, key_name="admin")
    assert await rooms.hold(read, until=silence.ends_at)
    assert await rooms.due_groups(T0 + 60 * S) == []
    await rooms.expire_silence("s1", now=T0 + 60 * S)
    assert [g.id for g in await rooms.due_groups(T0 + 60 * S)] == [group_id]


async def test_a_flush_reads_the_phones_silences_and_live_incidents_of_today(
    rooms: Rooms,
) -> None:
    dev, _ = await rooms.register_device(
        leader_id="b", token="tok-" + "t" * 30, platform="android", locale="en", now=T0
    )
    await rooms.register_device(
        leader_id="z", token="tok-" + "u" * 30, platform="android", locale="en", now=T0
    )
    (group_id,) = (await save(rooms, sighting("o-1", "observatory"))).group_ids
    await save(rooms, sighting("s-1", "spotter", lat=35.931))  # the same strike
    await save(rooms, sighting("o-2", "observatory", lat=35.99))  # another
    await save(rooms, sighting("o-3", "observatory", lat=36.1))
    await save(rooms, sighting("o-3", "observatory", lat=36.1, revision=2, status="retracted"))
    await save(rooms, sighting("x-1", "observatory", lat=36.3, region="SY0200"))  # elsewhere
    await save(rooms, sighting("y-1", "observatory", lat=36.5, occurred_at=T0 - 86400 * S))
    read = await rooms.flush_reads(
        group_id, leader_ids=["b"], silences_ending_after=T0,
        today=(frozenset({"SY0700"}), T0 - 3600 * S),
    )  # fmt: skip
    assert read is not None
    assert read.today == 2, "the strike seen twice counts once; a retracted one not at all"
    assert [d.id for d in read.devices] == [dev.id]
    assert read.silences == []
    assert read.acks == []
    assert read.last is None
    assert len(read.reports) == 7
    assert await rooms.flush_reads("nope", leader_ids=[], silences_ending_after=T0,
                                   today=None) is None  # fmt: skip


async def test_an_update_is_read_back_only_by_a_leader_it_was_sent_to(rooms: Rooms) -> None:
    await save(rooms, report("a"))
    (due,) = await rooms.due_groups(T0 + 30 * S)
    item = OutboxItem("b", None, "console", "t", "b", {}, due.id, "normal")
    summary = {"totals": {"killed": 1}, "state": {"inc": [1, 0, 0, 0, 0]}}
    assert await rooms.record_update(
        due, now=T0 + 30 * S, summary=summary, outbox=[item], rules_version="v1"
    )
    assert await rooms.get_update(due.id, 1, leader_id="b") == (T0 + 30 * S, summary)
    assert await rooms.get_update(due.id, 1, leader_id="c") is None
    assert await rooms.get_update(due.id, 2, leader_id="b") is None
    assert await rooms.recent_pushes(["root"], since=T0 + 30 * S) == [
        ("root", (("region", "SY07"),), T0 + 30 * S)
    ]
    assert await rooms.recent_pushes(["root"], since=T0 + 31 * S) == []
    assert await rooms.recent_pushes(["other"], since=T0) == []


async def test_a_surge_group_keeps_its_surge_state_with_its_update(rooms: Rooms) -> None:
    await save(rooms, report("a"))
    (due,) = await rooms.due_groups(T0 + 30 * S)
    state = SurgeState(open_since=T0 + 30 * S, told=12)
    assert await rooms.record_surge(
        due, now=T0 + 30 * S, summary={"kind": "surge"}, outbox=[], rules_version="v1",
        state=state, wakeup=T0 + 300 * S,
    )  # fmt: skip
    assert not await rooms.record_surge(
        due, now=T0 + 30 * S, summary={"kind": "surge"}, outbox=[], rules_version="v1",
        state=SurgeState(), wakeup=None,
    ), "written once"  # fmt: skip
    group = await rooms.get_group(due.id)
    assert group is not None
    assert group.surge_state == SurgeState(T0 + 30 * S, 12, T0 + 30 * S)
    assert (group.pending, group.next_flush_at) == (False, T0 + 300 * S)


async def test_a_leader_sees_the_open_groups_of_the_team_and_of_those_escalated_to_it(
    rooms: Rooms,
) -> None:
    harim = GroupTarget("harim", (("region", "SY0703"),), "harim-center", TIMING)
    first = await rooms.save_reports(
        [(sighting("o-1", "observatory", killed=2), [TARGET, harim]),
         (sighting("s-1", "spotter", lat=35.931), [TARGET]),
         (sighting("o-2", "observatory", lat=35.99, occurred_at=T0 + 60 * S), [TARGET])],
        now=T0, key_name="k", rules_version="v1",
    )  # fmt: skip
    idleb_id, harim_id = first[0].group_ids
    assert (
        await rooms.leader_groups(receivers=["harim-center"], escalated_from=[], incident_limit=5)
        != []
    )
    (mine,) = await rooms.leader_groups(
        receivers=["idleb-center"], escalated_from=["harim-center"], incident_limit=1
    )
    assert mine.group.id == idleb_id, "Harim's group has not escalated"
    assert mine.incidents_total == 2
    (newest,) = mine.incidents
    assert newest.id == first[2].stored.report.incident
    assert [s.report.id for s in newest.reports] == ["o-2"]
    assert mine.latest is None
    assert mine.acks == []
    (harim_read,) = [g for g in await rooms.due_groups(T0 + 30 * S) if g.id == harim_id]
    assert await rooms.record_update(
        harim_read, now=T0 + 1800 * S, summary={"kind": "escalation"}, outbox=[],
        rules_version="v1", escalate=True,
    )  # fmt: skip
    await rooms.acknowledge(harim_id, leader_id="h", at=T0 + 1900 * S, responding=True,
                            note=None)  # fmt: skip
    both = await rooms.leader_groups(
        receivers=["idleb-center"], escalated_from=["harim-center"], incident_limit=5
    )
    assert {g.group.id for g in both} == {idleb_id, harim_id}
    (escalated,) = [g for g in both if g.group.id == harim_id]
    assert escalated.latest == (1, T0 + 1800 * S, {"kind": "escalation"})
    assert [a.leader_id for a in escalated.acks] == ["h"]
    assert [i.id for i in escalated.incidents] == [first[0].stored.report.incident]
