"""Two service instances on one PostgreSQL: every update and every push goes out once.

Both run their own scheduler (ticks every 100 ms) against the same database and the same
FCM emulator, and reports arrive at both. The claims that make this safe are in the
database: an update is written only by the flusher whose read is still current, and a push
is sent only by the sender that claimed it (FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from dispatcher.store.repo import Store
from dispatcher.testing.fcm_emulator import FcmEmulator
from tests.support.databases import _create_pg_database, _drop_pg_database, postgres_url
from tests.support.harness import Keys, fcm_push, running, settings_for
from tests.support.waiting import until

pytestmark = pytest.mark.skipif(
    postgres_url() is None, reason="needs DISPATCHER_TEST_POSTGRES_URL (two instances share it)"
)

PLACES = [(36.12, 36.52), (35.93, 36.63), (36.2, 36.6), (35.8, 36.3)]  # Idleb districts


async def settled(store: Store) -> tuple[int, int]:
    """(open groups with an update due, pushes pending)."""
    groups = await store.open_groups()
    counts = await store.notification_counts()
    return sum(g.group.pending for g in groups), counts.get("pending", 0)


async def test_two_instances_never_send_an_update_twice(
    tmp_path: Path, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    base = postgres_url()
    assert base is not None
    url, name = await _create_pg_database(base)
    keys = Keys()
    keys.add("observatory", "reports:write")
    keys.add("phone", "devices:write", leader="harim-lead-1")
    keys.add("phone-2", "devices:write", leader="idleb-lead-2")
    settings = settings_for(
        tmp_path,
        keys,
        db_url=url,
        push=fcm_push(fcm_emulator, fcm_credentials),
    )
    try:
        async with running(settings, keys) as one, running(settings, keys) as two:
            for key in ("phone", "phone-2"):
                token = fcm_emulator.issue_token()
                status, _ = await one.post("/v1/devices", {"token": token, "platform": "android",
                                           "locale": "en"}, key=key)  # fmt: skip
                assert status == 201
            at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            for i in range(24):
                lat, lon = PLACES[i % len(PLACES)]
                body = {"id": f"r{i}", "source": f"s{i % 3}", "kind": "airstrike",
                        "occurred_at": at, "location": {"lat": lat + i * 0.001, "lon": lon},
                        "casualties": {"killed": i % 4}}  # fmt: skip
                status, _ = await (one if i % 2 else two).post(
                    "/v1/reports", body, key="observatory"
                )
                assert status == 202
                await asyncio.sleep(0.25)  # updates go out while reports come in
            # The last updates: every group has told what it holds, every push is done.
            await until(
                partial(settled, one.service.store), lambda left: left == (0, 0), within=30,
                what="every group told and every push done",
            )  # fmt: skip
    finally:
        await _drop_pg_database(base, name)

    sent = Counter((m.token, m.data["group_id"], m.data["seq"]) for m in fcm_emulator.received)
    twice = [(t[:8], g[:8], s, n) for (t, g, s), n in sent.items() if n > 1]
    assert not twice, f"(token, group, seq, times) sent more than once: {twice}"
    for token in {m.token for m in fcm_emulator.received}:
        for group in {g for t, g, _ in sent if t == token}:
            seqs = sorted(int(s) for t, g, s in sent if t == token and g == group)
            assert seqs == list(range(1, len(seqs) + 1)), "no update skipped or repeated"
    assert len(sent) >= 6, "several updates went out while both instances ticked"
