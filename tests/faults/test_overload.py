"""Overload is refused, not absorbed: past the bound of reports waiting for the database,
intake answers 503 with Retry-After, stores nothing of the refused request, and counts the
refusal in /metrics; everything answered 202 is stored."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.faults import Faults
from tests.support.harness import Keys, running, settings_for

pytestmark = pytest.mark.faults

BOUND = 300


async def test_a_flood_past_the_bound_is_refused_503_and_nothing_accepted_is_lost(
    tmp_path: Path, db_url: str, faults: Faults
) -> None:
    keys = Keys()
    keys.add("observatory", "reports:write", "read")
    keys.add("ops", "read")
    settings = settings_for(tmp_path, keys, db_url=db_url,
                            storage={"max_waiting_reports": BOUND})  # fmt: skip
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

    def batch(b: int) -> list[dict[str, Any]]:
        return [{"id": f"b{b}-{i}", "source": "observatory", "kind": "shelling",
                 "occurred_at": at, "region": "SY0703", "casualties": {"injured": i % 3}}
                for i in range(100)]  # fmt: skip

    async with running(settings, keys) as app:
        sent = {b: batch(b) for b in range(faults.rng.randint(30, 40))}
        answers = await asyncio.gather(
            *(app.post("/v1/reports", items, key="observatory") for items in sent.values())
        )
        refused = [b for b, (status, _) in zip(sent, answers, strict=True) if status == 503]
        taken = [b for b, (status, _) in zip(sent, answers, strict=True) if status == 200]
        assert len(refused) + len(taken) == len(sent), [s for s, _ in answers]
        for status, body in answers:
            if status == 503:
                assert body["title"] == "Service Unavailable"
                assert body["detail"].startswith("overloaded: ")
        probes = [(b, 0) for b in taken] + [(b, 99) for b in refused]
        found = {
            (b, i): (await app.get(f"/v1/reports/observatory/b{b}-{i}", key="observatory"))[0]
            for b, i in probes
        }
        async with app.http.get(app.url + "/metrics",
                                headers={"Authorization": "Bearer test-key-ops"}) as r:  # fmt: skip
            metrics = await r.text()

    print(f"{len(sent)} batches of 100 at once, bound {BOUND}: "
          f"{len(taken)} taken, {len(refused)} refused")  # fmt: skip
    assert refused, "the flood went past the bound"
    assert taken, "what fitted was taken"
    assert all(found[(b, 0)] == 200 for b in taken), "every accepted report is stored"
    assert all(found[(b, 99)] == 404 for b in refused), "nothing of a refused batch is stored"
    counted = re.search(r'^dispatcher_refused_requests_total\{reason="overload"\} (\S+)$',
                        metrics, re.M)  # fmt: skip
    assert counted is not None
    assert float(counted.group(1)) == len(refused)
