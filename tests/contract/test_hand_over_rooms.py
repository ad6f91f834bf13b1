"""One contract for handing a group over to its route's new receiver, kept by the in-memory
store, SQLite and PostgreSQL: the old group closes without a word, its pushes not yet sent
are not sent, and a new group holding every report tells the new receiver after its wait.
(Several instances handing one group over at once: tests/integration/test_store.py.)"""

from __future__ import annotations

from dispatcher.group import GroupTarget, Timing
from tests.contract.conftest import Rooms
from tests.contract.strikes import HARIM, T0, TARGET, TIMING, S, pending_update, report, save


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
