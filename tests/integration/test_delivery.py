"""The delivery stage over the store in memory, sending with our FCM sender to the FCM
emulator on loopback, on the manual clock: a push FCM refuses for a while is retried after
its backoff and given up after `max_attempts` with the reason kept; a dead token disables
its phone. No database: what the outbox keeps is held to the database's by
tests/contract/test_outbox_rooms.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from dispatcher.notify.fcm import FcmChannel
from dispatcher.notify.outbox import Delivery
from dispatcher.store.rows import DeliveryRow, OutboxItem
from dispatcher.testing.clock import ManualClock
from dispatcher.testing.fcm_emulator import FcmEmulator
from dispatcher.testing.memory import MemoryStore
from tests.contract.strikes import T0, S, report, save


@dataclass
class Stage:
    delivery: Delivery
    store: MemoryStore
    clock: ManualClock
    emu: FcmEmulator

    async def queue(self, leader: str = "b") -> tuple[str, str]:
        """A phone for `leader` and an update with a push to it; (group id, token)."""
        token = self.emu.issue_token()
        phone, _ = await self.store.register_device(
            leader_id=leader, token=token, platform="android", locale="en", now=self.clock()
        )
        (group_id,) = (await save(self.store, report(leader))).group_ids
        group = await self.store.get_group(group_id)
        assert group is not None
        item = OutboxItem(leader, phone.id, "fcm", "Strike", "1 killed", {}, group.id, "high")
        assert await self.store.record_update(
            group, now=self.clock(), summary={}, outbox=[item], rules_version="v1"
        )
        return group.id, token

    async def row(self, group_id: str) -> DeliveryRow:
        """The group's newest push."""
        return (await self.store.deliveries(group_id))[-1]


@pytest.fixture
async def stage(fcm_emulator: FcmEmulator, fcm_credentials: Path) -> AsyncIterator[Stage]:
    channel = await FcmChannel.create(str(fcm_credentials), endpoint=fcm_emulator.base_url)
    clock = ManualClock(T0 + 30 * S)
    store = MemoryStore()
    delivery = Delivery(store, channel, clock=clock, max_attempts=3, retry_base=10 * S,
                        retry_max=60 * S)  # fmt: skip
    yield Stage(delivery, store, clock, fcm_emulator)
    await channel.close()


async def test_a_push_fcm_refuses_is_retried_after_its_backoff_then_given_up(
    stage: Stage,
) -> None:
    group_id, _ = await stage.queue()
    stage.emu.fail_next(3, status=503, error_code="UNAVAILABLE")
    for attempt, ceiling in ((1, 10 * S), (2, 20 * S)):
        sent_at = stage.clock()
        assert await stage.delivery.run_once() == 1
        row = await stage.row(group_id)
        assert (row.status, row.attempts) == ("pending", attempt)
        assert row.last_error is not None
        assert row.last_error.startswith("UNAVAILABLE")
        assert row.next_attempt_at is not None
        assert sent_at + ceiling / 2 <= row.next_attempt_at <= sent_at + ceiling, "equal jitter"
        stage.clock.set(row.next_attempt_at - timedelta(milliseconds=1))
        assert await stage.delivery.run_once() == 0, "not before its backoff"
        stage.clock.set(row.next_attempt_at)
    assert await stage.delivery.run_once() == 1
    row = await stage.row(group_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert row.last_error is not None
    assert row.last_error.startswith("UNAVAILABLE"), "given up, with the reason kept"
    stage.clock.advance(3600 * S)
    assert await stage.delivery.run_once() == 0
    assert stage.emu.received == []
    assert await stage.store.notification_counts() == {"failed": 1}


async def test_a_dead_token_disables_its_phone_and_a_retry_waits_as_fcm_asked(
    stage: Stage,
) -> None:
    group_id, token = await stage.queue()
    stage.emu.unregister(token)
    assert await stage.delivery.run_once() == 1
    row = await stage.row(group_id)
    assert (row.status, row.attempts) == ("failed", 1), "no retry for an uninstalled app"
    assert await stage.store.active_devices(["b"]) == []

    later_id, fresh = await stage.queue("c")
    stage.emu.fail_next(1, status=429, error_code="QUOTA_EXCEEDED", retry_after=40)
    assert await stage.delivery.run_once() == 1
    row = await stage.row(later_id)
    assert row.next_attempt_at == stage.clock() + 40 * S, "no sooner than FCM asked"
    stage.clock.set(row.next_attempt_at)
    assert await stage.delivery.run_once() == 1
    row = await stage.row(later_id)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 2, stage.clock())
    assert [m.token for m in stage.emu.received] == [fresh]
