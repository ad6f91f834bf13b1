"""SQLite: a service SIGKILLed while it sends, started again on the same file.

The pushes it had claimed must go out within seconds of the restart, not when their
two-minute lease runs out: the new service holds the file's sender lock, which no live
service does, so the claims it finds are a dead one's and it frees them at start-up
(store/sole_sender.py). And a second service started beside a live one must leave the
live one's claims alone: it does not get the lock.

FCM here delivers each message at once and answers seconds later, so the service dies with
pushes that reached the phones but were never recorded as sent: they come again after the
restart, with the same collapse key.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dispatcher.testing.fcm_emulator import Chaos, FcmEmulator
from tests.support.faults import Faults
from tests.support.harness import Keys, fcm_push, running, settings_for
from tests.support.process import serving
from tests.support.pushing_service import LEADERS, PLACES, auth, pushing_env
from tests.support.waiting import until

pytestmark = pytest.mark.faults

LEASE = 120.0  # seconds: the claim's lease (notify/outbox.py), what a restart used to wait
OUT_WITHIN = 30.0  # seconds from the restart to the dead service's claims answered


def report(n: int) -> dict[str, Any]:
    lat, lon = PLACES[n % len(PLACES)]
    at = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    return {"id": f"r{n}", "source": f"s{n % 3}", "kind": "airstrike", "occurred_at": at,
            "location": {"lat": lat + (n % 40) * 1e-4, "lon": lon},
            "casualties": {"killed": n % 4}}  # fmt: skip


async def claimed(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    """The pending pushes some sender has claimed: (id, group, seq, token, claimed_until)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT n.id, n.group_id, n.seq, d.token, n.claimed_until FROM notifications n "
                "JOIN devices d ON d.id = n.device_id "
                "WHERE n.status = 'pending' AND n.claimed_until IS NOT NULL"
            )
        )
        return [tuple(r) for r in rows]


async def statuses(engine: AsyncEngine, ids: list[int]) -> Counter[str]:
    query = text("SELECT status FROM notifications WHERE id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    async with engine.connect() as conn:
        return Counter(r[0] for r in await conn.execute(query, {"ids": ids}))


async def test_a_killed_services_claims_go_out_within_seconds_of_its_restart(
    tmp_path: Path, fcm_emulator: FcmEmulator, fcm_credentials: Path, faults: Faults
) -> None:
    rng = faults.rng
    url = f"sqlite+aiosqlite:///{tmp_path / 'dispatcher.db'}"
    env = pushing_env(url, fcm_emulator.base_url, fcm_credentials)
    # FCM delivers every message at once and answers 5 s later (the client waits 10 s):
    # the service dies with pushes in flight.
    fcm_emulator.chaos(Chaos(rng, share=1.0, kinds=("slow",), slow=5.0))
    engine = create_async_engine(url)
    try:
        async with aiohttp.ClientSession() as http:
            async with serving(env, tmp_path) as first:
                for leader in LEADERS:
                    for _ in range(2):
                        body = {"token": fcm_emulator.issue_token(), "platform": "android"}
                        async with http.post(first.url + "/v1/devices", json=body,
                                             headers=auth(leader)) as r:  # fmt: skip
                            assert r.status == 201
                # One report in each leader's region, then none: the updates they make are
                # the newest of their groups, and nothing after the kill supersedes them.
                for n in range(len(PLACES)):
                    async with http.post(first.url + "/v1/reports", json=report(n),
                                         headers=auth("observatory")) as r:  # fmt: skip
                        assert r.status == 202, await r.text()
                await until(lambda: claimed(engine), within=30, every=0.05,
                            what="pushes claimed")  # fmt: skip
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                held = await claimed(engine)
                first.kill()
                await first.proc.wait()
            assert held, "the service died holding claims"
            fcm_emulator.chaos(None)
            at_kill = len(fcm_emulator.attempts)
            loop = asyncio.get_running_loop()
            restarted = loop.time()
            async with serving(env, tmp_path):
                listening = loop.time()
                ids = [row[0] for row in held]
                done = await until(lambda: statuses(engine, ids),
                                   lambda s: s["pending"] == 0, within=OUT_WITHIN, every=0.1,
                                   what="the dead service's claimed pushes answered")  # fmt: skip
                took, since_listening = loop.time() - restarted, loop.time() - listening
    finally:
        await engine.dispose()

    assert set(done) == {"sent"}, done
    after = [a for a in fcm_emulator.attempts[at_kill:] if a.delivered]
    for _, group, seq, token, _ in held:
        again = [a for a in after if (a.token, a.group_id) == (token, group)
                 and int(a.seq or 0) >= seq]  # fmt: skip
        assert again, f"update {seq} of group {group[:8]} (or a newer one) reached the device"
        assert len({a.collapse_key for a in again}) == 1, "one collapse key"
    print(f"killed holding {len(held)} claims ({dict(done)} after the restart); answered "
          f"{took:.1f} s after the restart began, {since_listening:.1f} s after it listened "
          f"(the lease would have held them {LEASE:g} s)")  # fmt: skip


async def test_a_second_service_on_the_file_leaves_the_first_ones_claims_alone(
    tmp_path: Path, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    keys = Keys()
    keys.add("observatory", "reports:write")
    keys.add(LEADERS[0], "devices:write", leader=LEADERS[0])
    push = fcm_push(fcm_emulator, fcm_credentials)
    settings = settings_for(tmp_path, keys, push=push)
    # Every answer comes late enough that the first service still holds its claims when
    # the second has started.
    fcm_emulator.slow_down(token := fcm_emulator.issue_token(), 8.0)
    async with running(settings, keys) as first:
        status, _ = await first.post(
            "/v1/devices", {"token": token, "platform": "android"}, key=LEADERS[0]
        )
        assert status == 201
        engine = first.service.store.engine
        n = 0

        async def some_claimed() -> list[tuple[Any, ...]]:
            nonlocal n
            n += 1
            status, answer = await first.post("/v1/reports", report(3 * n), key="observatory")
            assert status == 202, answer
            return await claimed(engine)

        held = await until(some_claimed, within=20, every=0.2, what="pushes claimed")
        assert first.service.store.sole is not None
        assert first.service.store.sole.held
        async with running(settings, keys) as second:
            assert second.service.store.sole is not None
            assert not second.service.store.sole.held, "the first service holds the lock"
            now = {row[0]: row[4] for row in await claimed(engine)}
        # Each claim is the first service's still, or that service has answered its push:
        # none was freed (claimed_until NULL) or taken again (a new claimed_until).
        answered = await statuses(engine, [row[0] for row in held if row[0] not in now])
    assert set(answered) <= {"sent", "superseded"}, answered
    assert all(now[row[0]] == row[4] for row in held if row[0] in now), "claims left alone"
