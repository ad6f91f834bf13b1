"""Three instances on one PostgreSQL, one SIGKILLed while it sends.

The others must take its due groups and its claimed sends over within 15 s (its claims are
signed with an advisory lock that PostgreSQL frees when its connection drops, see
store/claims.py), lose no (device, group, seq), and send a duplicate only of a push that
was in flight at the kill: within those 15 s, never after a newer update of its group
reached the device, and with the same collapse key so the phone replaces it.

FCM here delivers each message at once and answers a second later, so the victim dies
with pushes that reached the phones but were never recorded as sent: the case that came
twice, two minutes apart, when a claim was a lease alone.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, defaultdict
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dispatcher.testing.fcm_emulator import Attempt, Chaos, FcmEmulator
from tests.support.databases import _create_pg_database, _drop_pg_database, postgres_url
from tests.support.faults import Faults
from tests.support.process import Served, serving
from tests.support.pushing_service import LEADERS, PLACES, auth, pushing_env
from tests.support.waiting import until

pytestmark = [
    pytest.mark.faults,
    pytest.mark.postgres,
    pytest.mark.skipif(postgres_url() is None, reason="needs DISPATCHER_TEST_POSTGRES_URL"),
]

TAKE_OVER_WITHIN = 15.0


async def claims_by_process(engine: AsyncEngine) -> dict[int, list[tuple[Any, ...]]]:
    """The pending pushes each live instance has claimed, by its process id."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT a.application_name, n.id, n.group_id, n.seq, d.token "
                    "FROM notifications n JOIN devices d ON d.id = n.device_id "
                    "JOIN pg_locks l ON l.locktype = 'advisory' AND l.objid = n.claimed_by "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE n.status = 'pending' AND n.claimed_until > now()"
                )
            )
        ).all()
    found: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for name, *row in rows:
        pid = re.match(r"dispatcher pid (\d+) ", name)
        assert pid is not None, name
        found[int(pid.group(1))].append(tuple(row))
    return found


async def unsettled(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        groups = await conn.scalar(text("SELECT count(*) FROM alert_groups WHERE pending"))
        pushes = await conn.scalar(
            text("SELECT count(*) FROM notifications WHERE status = 'pending'")
        )
    return int(groups or 0), int(pushes or 0)


async def test_a_killed_instances_claims_are_taken_over_within_15_s(
    tmp_path: Path, fcm_emulator: FcmEmulator, fcm_credentials: Path, faults: Faults
) -> None:
    rng = faults.rng
    base = postgres_url()
    assert base is not None
    url, name = await _create_pg_database(base)
    env = pushing_env(url, fcm_emulator.base_url, fcm_credentials)
    # FCM delivers every message at once and answers a second later: the victim dies
    # holding claims on pushes that already reached the phones.
    fcm_emulator.chaos(Chaos(rng, share=1.0, kinds=("slow",), slow=1.0))
    engine = create_async_engine(url)
    victim: Served | None = None
    in_flight: list[tuple[Any, ...]] = []
    killed_at = 0.0
    try:
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            instances = [await stack.enter_async_context(serving(env, tmp_path)) for _ in range(3)]
            for leader in LEADERS:
                for _ in range(2):
                    body = {"token": fcm_emulator.issue_token(), "platform": "android"}
                    async with http.post(instances[0].url + "/v1/devices", json=body,
                                         headers=auth(leader)) as r:  # fmt: skip
                        assert r.status == 201
            alive = list(instances)
            stop = asyncio.Event()

            async def reporter() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    lat, lon = rng.choice(PLACES)
                    at = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
                    body = {"id": f"r{n}", "source": f"s{n % 5}", "kind": "airstrike",
                            "occurred_at": at, "location": {"lat": lat + (n % 50) * 1e-4,
                                                            "lon": lon},
                            "casualties": {"killed": rng.choice([0, 1, 2, 12])}}  # fmt: skip
                    target = rng.choice(alive)
                    try:
                        async with http.post(target.url + "/v1/reports", json=body,
                                             headers=auth("observatory")) as r:  # fmt: skip
                            assert r.status == 202, await r.text()
                    except aiohttp.ClientError:
                        assert target is victim, "only the killed instance fails to answer"
                    await asyncio.sleep(rng.uniform(0.05, 0.25))

            load = asyncio.create_task(reporter())
            await asyncio.sleep(rng.uniform(2.0, 4.0))
            pids = {s.proc.pid: s for s in instances}
            held = await until(lambda: claims_by_process(engine),
                               lambda c: any(p in pids for p in c), within=20, every=0.02,
                               what="an instance holding claims")  # fmt: skip
            pid = max((p for p in held if p in pids), key=lambda p: len(held[p]))
            victim, in_flight = pids[pid], held[pid]
            alive.remove(victim)
            victim.kill()
            killed_at = time.monotonic()
            await victim.proc.wait()
            await asyncio.sleep(faults.seconds(6.0, 60.0))  # load on the survivors
            stop.set()
            await load
            await until(lambda: unsettled(engine), lambda u: u == (0, 0), within=45, every=0.2,
                        what="every group flushed and every push answered")  # fmt: skip
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT n.group_id, n.seq, n.status, d.token FROM notifications n "
                            "JOIN devices d ON d.id = n.device_id"
                        )
                    )
                ).all()
    finally:
        await engine.dispose()
        await _drop_pg_database(base, name)

    statuses = Counter(row.status for row in rows)
    assert set(statuses) <= {"sent", "superseded"}, statuses
    attempts: dict[tuple[str, str | None, str | None], list[Attempt]] = defaultdict(list)
    for a in fcm_emulator.attempts:
        if a.delivered:
            attempts[(a.token, a.group_id, a.seq)].append(a)
    newest: dict[tuple[str, str], int] = {}
    for row in rows:
        newest[(row.token, row.group_id)] = max(row.seq, newest.get((row.token, row.group_id), 0))
    lost = [ref for ref, seq in newest.items() if not attempts[(*ref, str(seq))]]
    detail = [
        (t[:6], g[:6], sorted((row.seq, row.status) for row in rows
                               if row.token == t and row.group_id == g),
         sorted((a.seq, a.status, a.delivered) for a in fcm_emulator.attempts
                if a.token == t and a.group_id == g),
         sorted({(m.data.get("group_id", "")[:6], m.data.get("seq")) for m in fcm_emulator.received
                if m.token == t}), len(fcm_emulator.received), len(fcm_emulator.attempts))
        for t, g in lost
    ]  # fmt: skip
    assert lost == [], f"the newest update of every group reached every device: {detail}"
    for row in rows:
        if row.status == "sent":
            assert attempts[(row.token, row.group_id, str(row.seq))], "sent means delivered"

    # The victim's claims: each device had that update, or a newer one of its group, from
    # another instance within 15 s of the kill.
    taken_over = []
    for _, group, seq, token in in_flight:
        after = [a.at - killed_at for (t, g, s), got in attempts.items()
                 if t == token and g == group and int(s or 0) >= seq
                 for a in got if a.at > killed_at]  # fmt: skip
        assert after, f"claimed update {seq} of group {group[:8]} never reached the device"
        taken_over.append(min(after))
    twice = {ref: got for ref, got in attempts.items() if len(got) > 1}
    victims = {(token, group, str(seq)) for _, group, seq, token in in_flight}
    for (token, group, seq), got in twice.items():
        assert (token, group, seq) in victims, "a duplicate only of a send in flight at the kill"
        second = sorted(a.at for a in got)[1]
        assert second - killed_at <= TAKE_OVER_WITHIN, "a duplicate within 15 s or not at all"
        newer = [a.at for (t, g, s), got2 in attempts.items() for a in got2
                 if t == token and g == group and int(s or 0) > int(seq or 0)]  # fmt: skip
        assert all(at > second for at in newer), "never after a newer update reached it"
        assert len({a.collapse_key for a in got}) == 1, "the same collapse key"
    print(f"killed pid {victim.proc.pid if victim else '?'} holding {len(in_flight)} claims; "
          f"the devices had them (or newer) from the others at the latest "
          f"{max(taken_over, default=0):.1f} s after the kill; {len(twice)} duplicates; "
          f"{len(rows)} pushes {dict(statuses)}")  # fmt: skip
    assert in_flight, "the victim died holding claims"
    assert max(taken_over, default=0) <= TAKE_OVER_WITHIN
