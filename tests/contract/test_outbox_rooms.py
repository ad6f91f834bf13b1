"""One contract for the outbox, kept by the in-memory store, SQLite and PostgreSQL: claims
under a lease, outcomes, superseded and expired pushes, fallbacks, the delivery record and
retention."""

from __future__ import annotations

from dispatcher.store.rows import OutboxItem, Outcome
from tests.contract.conftest import Rooms
from tests.contract.strikes import T0, S, pending_update, report, save


async def test_devices_move_between_leaders_and_outbox_records_outcomes(rooms: Rooms) -> None:
    dev, created = await rooms.register_device(
        leader_id="a", token="tok-" + "x" * 30, platform="android", locale="ar", now=T0
    )
    assert created
    moved, created = await rooms.register_device(
        leader_id="b", token="tok-" + "x" * 30, platform="ios", locale="en", now=T0 + S
    )
    assert not created
    assert moved.id == dev.id
    assert [d.leader_id for d in await rooms.active_devices(["a", "b"])] == ["b"]

    created_report = await save(rooms, report())
    (group,) = await rooms.due_groups(T0 + 30 * S)
    item = OutboxItem("b", dev.id, "fcm", "t", "b", {"k": "v"}, group.id, "normal")
    await rooms.record_update(group, now=T0 + 30 * S, summary={}, outbox=[item], rules_version="v1")
    (pending,) = await rooms.claim_pushes(T0 + 30 * S, lease=60 * S)
    assert pending.token == "tok-" + "x" * 30
    assert pending.group_id == created_report.group_ids[0]
    await rooms.record_outcomes(
        [Outcome(pending.id, "failed", error="UNREGISTERED: gone", disable_device=True)],
        now=T0 + 31 * S,
        device_of={pending.id: dev.id},
    )
    assert await rooms.claim_pushes(T0 + 40 * S, lease=60 * S) == []
    assert await rooms.active_devices(["b"]) == [], "a dead token is disabled"
    assert await rooms.notification_counts() == {"failed": 1}


async def test_a_web_push_subscription_s_keys_reach_the_sender(rooms: Rooms) -> None:
    endpoint = "https://updates.push.services.mozilla.com/wpush/v2/" + "x" * 40
    dev, _ = await rooms.register_device(leader_id="b", token=endpoint, platform="web",
                                         locale="en", now=T0, p256dh="BPk", auth="au")  # fmt: skip
    assert (dev.p256dh, dev.auth) == ("BPk", "au")
    await save(rooms, report())
    (group,) = await rooms.due_groups(T0 + 30 * S)
    item = OutboxItem("b", dev.id, "webpush", "t", "b", {"k": "v"}, group.id, "high")
    await rooms.record_update(group, now=T0 + 30 * S, summary={}, outbox=[item], rules_version="v1")
    (pending,) = await rooms.claim_pushes(T0 + 30 * S, lease=60 * S)
    assert (pending.channel, pending.platform, pending.token) == ("webpush", "web", endpoint)
    assert (pending.p256dh, pending.auth) == ("BPk", "au")


async def test_a_newer_update_supersedes_the_pending_one_and_stale_pushes_expire(
    rooms: Rooms,
) -> None:
    dev, _ = await rooms.register_device(
        leader_id="b", token="tok-" + "y" * 30, platform="android", locale="en", now=T0
    )
    await save(rooms, report("a"))
    group_id = await pending_update(rooms, dev.id, T0 + 30 * S, expires_at=T0 + 3600 * S)
    await save(rooms, report("b"), T0 + 100 * S)
    await pending_update(rooms, dev.id, T0 + 150 * S, expires_at=T0 + 3750 * S)
    (due,) = await rooms.claim_pushes(T0 + 150 * S, lease=60 * S)
    assert due.seq == 2, "only the latest update of the group goes to the phone"
    older, newer = await rooms.deliveries(group_id)
    assert (older.status, older.last_error) == ("superseded", "superseded by update 2")
    assert newer.status == "pending"

    # The claim ran out with nothing recorded (the sender died): the push is due again,
    # but not after its time to live.
    (again,) = await rooms.claim_pushes(T0 + 211 * S, lease=60 * S)
    assert again.id == due.id
    assert await rooms.claim_pushes(T0 + 3800 * S, lease=60 * S) == []
    (_, expired) = await rooms.deliveries(group_id)
    assert (expired.status, expired.last_error) == ("expired", "not sent within its time to live")


async def test_retention_forgets_old_delivery_records_and_dead_phones_only(rooms: Rooms) -> None:
    dev, _ = await rooms.register_device(
        leader_id="b", token="tok-" + "r" * 30, platform="android", locale="en", now=T0
    )
    live, _ = await rooms.register_device(
        leader_id="b", token="tok-" + "l" * 30, platform="android", locale="en", now=T0
    )
    await save(rooms, report("a"))
    group_id = await pending_update(rooms, dev.id, T0 + 30 * S)
    (push,) = await rooms.claim_pushes(T0 + 30 * S, lease=60 * S)
    await rooms.record_outcomes(
        [Outcome(push.id, "failed", error="UNREGISTERED: gone", disable_device=True)],
        now=T0 + 31 * S,
        device_of={push.id: dev.id},
    )
    group = await rooms.get_group(group_id)
    assert group is not None
    assert await rooms.record_update(
        group, now=T0 + 40 * S, summary={}, outbox=[], rules_version="v1", close=True
    )
    assert await rooms.forget(closed_before=T0, disabled_before=T0) == (0, 0), "too recent"
    assert await rooms.forget(closed_before=T0 + 3600 * S, disabled_before=T0 + 3600 * S) == (
        1,
        1,
    )
    assert await rooms.deliveries(group_id) == []
    assert [d.id for d in await rooms.active_devices(["b"])] == [live.id], "live phones stay"
    assert len(await rooms.report_revisions("obs", "a")) == 1, "reports are kept for good"
