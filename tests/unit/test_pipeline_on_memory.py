"""The pipeline over the store in memory: reports accepted, groups flushed, pushes sent
through the console channel, with no database. What the store does is held to the
database's by tests/contract/; here the pipeline's own part is tested: counting again when
incidents merge, a silence's hold lifted, an immediate route's push without a tick.
Rules: tests/testdata/rules-e2e (group_wait 1s, group_interval 3s), with two sources'
tiers."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dispatcher.intake import ReportIn
from dispatcher.metrics import Metrics
from dispatcher.notify.console import ConsoleChannel
from dispatcher.notify.outbox import Delivery
from dispatcher.pipeline import Pipeline
from dispatcher.rules.live import LiveRules
from dispatcher.rules.load import load_rules
from dispatcher.silence import Silence
from dispatcher.testing.clock import ManualClock
from dispatcher.testing.memory import MemoryStore

RULES = Path(__file__).parents[1] / "testdata" / "rules-e2e"
NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
S, M = timedelta(seconds=1), timedelta(minutes=1)
HARIM = (36.12, 36.52)  # in SY0703 Harim, in SY07 Idleb
M325 = 325 / 111_195  # degrees of latitude


@dataclass
class Service:
    pipeline: Pipeline
    store: MemoryStore
    clock: ManualClock

    async def post(self, rid: str, source: str, *, north: float = 0, **more: Any) -> None:
        wire = ReportIn.model_validate({
            "id": rid, "source": source, "kind": "airstrike",
            "occurred_at": (NOON - 5 * M).isoformat(),
            "location": {"lat": HARIM[0] + north, "lon": HARIM[1]}, **more,
        })  # fmt: skip
        await self.pipeline.accept(wire, key_name="reporter")

    async def told(self, after: timedelta = 5 * S) -> dict[str, Any] | None:
        """Move the clock on and tick: Harim's last update, if one was sent this tick."""
        self.clock.advance(after)
        before = await self.latest()
        await self.pipeline.tick()
        latest = await self.latest()
        return latest if latest != before else None

    async def latest(self) -> dict[str, Any] | None:
        groups = await self.store.leader_groups(
            receivers=["harim-center"], escalated_from=[], incident_limit=10
        )
        if not groups or groups[0].latest is None:
            return None
        return groups[0].latest[2]


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "sources.yaml").write_text("sources:\n  own: [team-harim]\n  trusted: [observatory]\n")
    clock = ManualClock(NOON)
    store = MemoryStore()
    channel = ConsoleChannel("tests")
    delivery = Delivery(store, channel, clock=clock, max_attempts=3, retry_base=S, retry_max=M)
    pipeline = Pipeline(
        store=store, rules=LiveRules(load_rules(rules), rules, NOON), channel=channel,
        delivery=delivery, clock=clock, display_tz=ZoneInfo("Asia/Damascus"), metrics=Metrics(),
    )  # fmt: skip
    await store.register_device(
        leader_id="harim-lead-1", token="tok-" + "h" * 40, platform="android", locale="en",
        now=NOON,
    )  # fmt: skip
    yield Service(pipeline, store, clock)
    await pipeline.drain()


async def test_incidents_our_team_gathers_after_an_update_are_counted_once(
    service: Service,
) -> None:
    """Two observers 650 m apart: two incidents, told. Our team's report between them gathers
    both into one: the next update counts one incident, at the team's figure."""
    await service.post("o-1", "observatory", north=M325, casualties={"killed": 5})
    await service.post("w-1", "witness", north=-M325, casualties={"killed": 2})
    first = await service.told()
    assert first is not None
    assert (first["incidents"], first["totals"]["killed"]) == (2, 7)
    await service.post("t-1", "team-harim", north=0.000001, casualties={"killed": 4})
    second = await service.told()
    assert second is not None
    assert (second["incidents"], second["totals"]["killed"]) == (1, 4)
    assert second["highs"]["killed"] == 5, "others report up to 5"


async def test_a_group_held_by_a_silence_is_told_when_the_silence_is_lifted(
    service: Service,
) -> None:
    silence = Silence(
        id="drill", regions=frozenset({"SY0703"}), receivers=frozenset(), routes=frozenset(),
        kinds=frozenset(), starts_at=NOON, ends_at=NOON + 2 * 60 * M, author="op",
        reason="drill", created_at=NOON,
    )  # fmt: skip
    await service.store.add_silence(silence, key_name="desk")
    await service.post("o-1", "observatory", casualties={"killed": 3})
    assert await service.told() is None, "held"
    assert await service.told(10 * M) is None, "still held"
    await service.store.expire_silence("drill", now=service.clock())
    told = await service.told(S)
    assert told is not None
    assert told["totals"]["killed"] == 3


async def test_an_immediate_route_pushes_without_waiting_for_a_tick(service: Service) -> None:
    """12 killed: the mass-casualty route tells Idleb's deputy at once; the push is written,
    claimed and sent as the report is accepted."""
    await service.store.register_device(
        leader_id="idleb-lead-2", token="tok-" + "i" * 40, platform="android", locale="en",
        now=NOON,
    )  # fmt: skip
    await service.post("o-1", "observatory", casualties={"killed": 12})
    await service.pipeline.drain()
    (group,) = await service.store.leader_groups(
        receivers=["idleb-lead-2"], escalated_from=[], incident_limit=1
    )
    (push,) = await service.store.deliveries(group.group.id)
    assert (push.leader_id, push.status, push.sent_at) == ("idleb-lead-2", "sent", NOON)


async def test_past_the_immediate_flushes_in_flight_the_next_tick_sends(
    service: Service,
) -> None:
    """A surge of mass-casualty reports does not pile up flushes without end: with as many
    in flight as allowed (none here), the report's group waits for the next tick, which is
    due at once, and sends it."""
    service.pipeline.max_immediate = 0
    await service.store.register_device(
        leader_id="idleb-lead-2", token="tok-" + "i" * 40, platform="android", locale="en",
        now=NOON,
    )  # fmt: skip
    await service.post("o-1", "observatory", casualties={"killed": 12})
    await service.pipeline.drain()
    (group,) = await service.store.leader_groups(
        receivers=["idleb-lead-2"], escalated_from=[], incident_limit=1
    )
    assert await service.store.deliveries(group.group.id) == []
    service.clock.advance(S)
    await service.pipeline.tick()
    (push,) = await service.store.deliveries(group.group.id)
    assert (push.leader_id, push.status) == ("idleb-lead-2", "sent")
