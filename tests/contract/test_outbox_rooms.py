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


async def test_an_immediate_update_s_pushes_are_claimed_with_it(rooms: Rooms) -> None:
    dev, _ = await rooms.register_device(
        leader_id="b", token="tok-" + "i" * 30, platform="android", locale="en", now=T0
    )
    await save(rooms, report("a"))
    (group,) = await rooms.due_groups(T0 + 30 * S)
    item = OutboxItem("b", dev.id, "fcm", "t", "b", {"seq": "1"}, group.id, "high")
    claimed = await rooms.record_update_and_claim(
        group, now=T0 + 30 * S, summary={}, outbox=[item], rules_version="v1", lease=60 * S
    )
    assert claimed is not None
    (push,) = claimed
    assert (push.seq, push.device_id, push.token, push.data, push.priority) == (
        1, dev.id, "tok-" + "i" * 30, {"seq": "1"}, "high",
    )  # fmt: skip
    assert await rooms.claim_pushes(T0 + 31 * S, lease=60 * S) == [], "claimed already"
    again = await rooms.record_update_and_claim(
        group, now=T0 + 30 * S, summary={}, outbox=[item], rules_version="v1", lease=60 * S
    )
    assert again is None, "the update was written once"
    (retry,) = await rooms.claim_pushes(T0 + 90 * S, lease=60 * S)
    assert retry.id == push.id, "its sender died: due again when the lease runs out"


async def test_a_failed_push_is_retried_then_falls_back_once_per_leader(rooms: Rooms) -> None:
    phones = [
        (await rooms.register_device(leader_id="b", token=f"tok-{n}" + "f" * 30,
                                     platform="android", locale="en", now=T0))[0]
        for n in range(2)
    ]  # fmt: skip
    await save(rooms, report("a"))
    (group,) = await rooms.due_groups(T0 + 30 * S)
    items = [OutboxItem("b", d.id, "fcm", "t", "b", {}, group.id, "high") for d in phones]
    await rooms.record_update(group, now=T0 + 30 * S, summary={}, outbox=items,
                              rules_version="v1")  # fmt: skip
    first = await rooms.claim_pushes(T0 + 30 * S, lease=60 * S)
    assert len(first) == 2
    await rooms.record_outcomes(
        [Outcome(p.id, "pending", error="UNAVAILABLE", next_attempt_at=T0 + 45 * S)
         for p in first],
        now=T0 + 31 * S, device_of={p.id: p.device_id for p in first},
    )  # fmt: skip
    assert await rooms.claim_pushes(T0 + 44 * S, lease=60 * S) == [], "not before its retry"
    second = await rooms.claim_pushes(T0 + 45 * S, lease=60 * S)
    assert [p.attempts for p in second] == [1, 1]
    await rooms.record_outcomes(
        [Outcome(p.id, "failed", error="UNREGISTERED", disable_device=True) for p in second],
        now=T0 + 46 * S,
        device_of={p.id: p.device_id for p in second},
        fallbacks={p.id: "sms" for p in second},
    )
    (sms,) = await rooms.claim_pushes(T0 + 46 * S, lease=60 * S)
    assert (sms.channel, sms.leader_id, sms.device_id, sms.token, sms.seq) == (
        "sms", "b", None, None, 1,
    ), "one text message for a leader whose two phones failed"  # fmt: skip
    await rooms.record_outcomes(
        [Outcome(sms.id, "sent", message_name="sms-1")], now=T0 + 47 * S, device_of={}
    )
    rows = await rooms.deliveries(group.id)
    assert [(r.channel, r.status, r.attempts) for r in rows] == [
        ("fcm", "failed", 2), ("fcm", "failed", 2), ("sms", "sent", 1),
    ]  # fmt: skip
    assert (rows[2].message_name, rows[2].sent_at, rows[2].last_error) == (
        "sms-1", T0 + 47 * S, None,
    )  # fmt: skip
    assert (rows[0].message_name, rows[0].sent_at) == (None, None)
    assert await rooms.notification_counts() == {"failed": 2, "sent": 1}
    assert await rooms.active_devices(["b"]) == [], "both tokens are dead"
