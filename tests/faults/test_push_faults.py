"""FCM and Web Push having a bad spell at once while reports come in: afterwards every device
of either channel has the newest update of every group (older ones reached it or were
superseded), no send came back before the Retry-After it was given, and nothing is left
pending.

The spell lasts the issue's minute on SQLite and 12 s on PostgreSQL in the bounded suite (a
minute on both under --soak): the retry and Retry-After rules are the same over either
store, and two minutes would cost the suite its budget. Of the sends to each service, a
third fail: 503 and 429 with Retry-After, connections dropped mid-request, and answers held
past the client's 1 s timeout after the message was delivered (so the retry is a duplicate
the device collapses: the same collapse key on FCM, the same Topic on Web Push).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dispatcher.store.tables import alert_groups, devices, notifications
from dispatcher.testing.fcm_emulator import FcmEmulator
from dispatcher.testing.loopback import Attempt, Chaos
from dispatcher.testing.webpush_emulator import WebPushEmulator
from tests.support.faults import Faults
from tests.support.harness import Keys, Running, fcm_push, running, settings_for
from tests.support.waiting import until

pytestmark = pytest.mark.faults

LEADERS = ["harim-lead-1", "idleb-lead-1", "idleb-lead-2"]
HARIM, IDLEB = (36.15, 36.6), (35.8, 36.3)  # (lat, lon): Harim district, elsewhere in Idleb
CLIENT_TIMEOUT = 1.0


async def settled(app: Running) -> tuple[int, int]:
    """(groups with unflushed changes, pushes pending)."""
    async with app.service.store.engine.connect() as conn:
        groups = await conn.scalar(
            select(func.count()).select_from(alert_groups).where(alert_groups.c.pending)
        )
        pushes = await conn.scalar(
            select(func.count())
            .select_from(notifications)
            .where(notifications.c.status == "pending")
        )
    return int(groups or 0), int(pushes or 0)


def check_channel(name: str, rows: Sequence[Any], attempts: Sequence[Attempt]) -> str:
    """The promises for one channel's pushes (`rows`) and what its service saw
    (`attempts`); returns a line of figures."""
    statuses = Counter(r.status for r in rows)
    assert set(statuses) <= {"sent", "superseded"}, (name, statuses)
    delivered = Counter((a.token, a.group_id, a.seq) for a in attempts if a.delivered)
    newest: dict[tuple[str, str], int] = {}
    for r in rows:
        newest[(r.token, r.group_id)] = max(r.seq, newest.get((r.token, r.group_id), 0))
    for (token, group), seq in newest.items():
        assert delivered[(token, group, str(seq))] >= 1, f"{name}: the newest update arrived"
    for r in rows:
        if r.status == "sent":
            assert delivered[(r.token, r.group_id, str(r.seq))] >= 1, f"{name}: sent = delivered"

    # No send came back before the Retry-After it was given.
    tries: defaultdict[tuple[str, str | None, str | None], list[Attempt]] = defaultdict(list)
    for a in attempts:
        tries[(a.token, a.group_id, a.seq)].append(a)
    early = []
    for each in tries.values():
        for before, after in itertools.pairwise(sorted(each, key=lambda a: a.at)):
            if (
                before.retry_after is not None
                and after.at < before.answered_at + before.retry_after
            ):
                early.append((before.status, before.retry_after,
                              round(after.at - before.answered_at, 3)))  # fmt: skip
    assert early == [], f"{name}: retries before their Retry-After: {early[:5]}"

    # A duplicate only where the answer was lost (dropped or late), with the same collapse key.
    twice = {ref: n for ref, n in delivered.items() if n > 1}
    for ref in twice:
        keys_seen = {a.collapse_key for a in tries[ref] if a.delivered}
        assert len(keys_seen) == 1, f"{name}: a duplicate carries the same collapse key"
    seen = Counter(a.status for a in attempts)
    assert seen[503] > 0, f"{name}: some sends were answered 503"
    assert seen[429] > 0, f"{name}: some sends were answered 429"
    assert seen[0] > 0, f"{name}: some connections were dropped"
    assert statuses["sent"] >= 10, f"{name}: a real load went through"
    return (f"{name}: {len(rows)} pushes ({dict(statuses)}); answered {dict(seen)} "
            f"(0 = dropped); {len(twice)} delivered twice after a lost answer")  # fmt: skip


async def test_every_update_reaches_every_device_through_a_bad_spell_of_fcm_and_web_push(
    tmp_path: Path,
    db_url: str,
    fcm_emulator: FcmEmulator,
    fcm_credentials: Path,
    webpush_emulator: WebPushEmulator,
    faults: Faults,
) -> None:
    rng = faults.rng
    fcm, web = fcm_emulator, webpush_emulator
    keys = Keys()
    keys.add("observatory", "reports:write")
    for leader in LEADERS:
        keys.add(leader, "devices:write", leader=leader)
    webpush = {"allowed_origins": [web.origin], "timeout": CLIENT_TIMEOUT}
    push = fcm_push(fcm, fcm_credentials, retry_base="200ms", retry_max="1s", max_attempts=50,
                    webpush=webpush)  # fmt: skip
    push["fcm"]["timeout"] = CLIENT_TIMEOUT
    settings = settings_for(tmp_path, keys, db_url=db_url, push=push)
    minute = 60.0
    spell = minute if db_url.startswith("sqlite") else faults.seconds(12.0, minute)
    async with running(settings, keys) as app:
        status, vapid = await app.get("/v1/webpush/vapid")
        assert status == 200
        for leader in LEADERS:
            for _ in range(2):
                body: dict[str, Any] = {"token": fcm.issue_token(), "platform": "android",
                                        "locale": "en"}  # fmt: skip
                status, _ = await app.post("/v1/devices", body, key=leader)
                assert status == 201
                subscription = web.subscribe(application_server_key=vapid["public_key"])
                body = {"platform": "web", "locale": "en", "subscription": subscription}
                status, answer = await app.post("/v1/devices", body, key=leader)
                assert status == 201, answer
        # One spell over both services at once, each drawing its faults from its own seed.
        for emulator in (fcm, web):
            emulator.chaos(Chaos(random.Random(rng.getrandbits(64)), share=0.33,
                                 retry_after=(1, 3), slow=2 * CLIENT_TIMEOUT))  # fmt: skip
        loop = asyncio.get_running_loop()
        end = loop.time() + spell
        n = 0
        while loop.time() < end:
            n += 1
            lat, lon = rng.choice([HARIM, IDLEB])
            at = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
            report = {"id": f"r{n}", "source": f"s{n % 4}", "kind": "airstrike", "occurred_at": at,
                      "location": {"lat": lat + rng.uniform(0, 0.05), "lon": lon},
                      "casualties": {"killed": rng.choice([0, 1, 2, 3, 12])}}  # fmt: skip
            status, answer = await app.post("/v1/reports", report, key="observatory")
            assert status == 202, answer
            await asyncio.sleep(rng.uniform(0.1, 0.6))
        fcm.chaos(None)
        web.chaos(None)
        await until(lambda: settled(app), lambda s: s == (0, 0), within=60, every=0.2,
                    what="every group flushed and every push answered")  # fmt: skip
        async with app.service.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        notifications.c.channel,
                        notifications.c.group_id,
                        notifications.c.seq,
                        notifications.c.status,
                        devices.c.token,
                    ).join(devices, devices.c.id == notifications.c.device_id)
                )
            ).all()

    assert {r.channel for r in rows} == {"fcm", "webpush"}
    print(f"a spell of {spell:g} s, {n} reports")
    for name, emulator in (("FCM", fcm), ("Web Push", web)):
        channel = "fcm" if emulator is fcm else "webpush"
        print(check_channel(name, [r for r in rows if r.channel == channel], emulator.attempts))
