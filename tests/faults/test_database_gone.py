"""The database going away under load.

PostgreSQL stopped for 20 s and started again (a server of the test's own, so nobody else's
database stops): intake answers 503 with Retry-After while it is gone, never 500, never a
202 that is then lost, and the running service takes reports and sends pushes again once
it is back, without a restart.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.testing.fcm_emulator import FcmEmulator
from tests.support.databases import _create_pg_database
from tests.support.faults import Faults
from tests.support.harness import Keys, Running, fcm_push, running, settings_for
from tests.support.pg_server import pg_server, server_bin
from tests.support.waiting import until

pytestmark = pytest.mark.faults

IDLEB, HARIM = (35.8, 36.3), (36.15, 36.6)  # (lat, lon): not Harim, and Harim


def report(n: int, place: tuple[float, float], killed: int = 1) -> dict[str, Any]:
    return {"id": f"r{n}", "source": "observatory", "kind": "airstrike",
            "occurred_at": (datetime.now(UTC) - timedelta(seconds=30)).isoformat(),
            "location": {"lat": place[0] + (n % 200) * 1e-4, "lon": place[1]},
            "casualties": {"killed": killed}}  # fmt: skip


async def post(app: Running, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": f"Bearer {app.keys.plain['observatory']}"}
    async with app.http.post(app.url + "/v1/reports", json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.text()


@pytest.mark.skipif(server_bin() is None, reason="needs PostgreSQL's server programs (pg_ctl)")
async def test_intake_refuses_while_postgresql_is_gone_and_resumes_without_a_restart(
    tmp_path: Path, fcm_emulator: FcmEmulator, fcm_credentials: Path, faults: Faults
) -> None:
    outage = 20.0
    keys = Keys()
    keys.add("observatory", "reports:write", "read")
    keys.add("phone", "devices:write", leader="harim-lead-1")
    async with pg_server() as server:
        url, _ = await _create_pg_database(server.url)
        settings = settings_for(tmp_path, keys, db_url=url,
                                push=fcm_push(fcm_emulator, fcm_credentials))  # fmt: skip
        async with running(settings, keys) as app:
            token = fcm_emulator.issue_token()
            body = {"token": token, "platform": "android", "locale": "en"}
            assert (await app.post("/v1/devices", body, key="phone"))[0] == 201
            answers: list[tuple[int, int, dict[str, str], str]] = []  # (n, status, headers, body)
            stop = asyncio.Event()

            async def reporter() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    status, headers, text = await post(app, report(n, IDLEB))
                    answers.append((n, status, headers, text))
                    await asyncio.sleep(faults.rng.uniform(0.02, 0.1))

            load = asyncio.create_task(reporter())
            await until(lambda: len(answers), lambda n: n >= 10, what="reports before")
            await server.stop()
            gone_at = len(answers)
            await asyncio.sleep(outage)  # the outage itself, under load
            await server.start()
            started = asyncio.get_running_loop().time()
            back_at = len(answers)
            await until(lambda: answers[-1][1], lambda s: s == 202, within=30,
                        what="intake answering 202 again")  # fmt: skip
            recovered = asyncio.get_running_loop().time() - started
            await asyncio.sleep(1)
            stop.set()
            await load

            # Pushes go out again from the same running scheduler.
            status, _, _ = await post(app, report(10_000, HARIM, killed=2))
            assert status == 202
            message = await until(
                lambda: [m for m in fcm_emulator.received if m.token == token],
                within=15,
                what="a push for a report made after the outage",
            )
            readback = []
            for n, status, _, _ in answers:
                if status == 202:
                    code, _ = await app.get(f"/v1/reports/observatory/r{n}", key="observatory")
                    readback.append(code)

    statuses = sorted({s for _, s, _, _ in answers})
    during = [(s, h, t) for _, s, h, t in answers[gone_at:back_at]]
    refused = [(h, t) for s, h, t in during if s == 503]
    print(f"{len(answers)} reports posted: {gone_at} before the outage, {len(during)} during "
          f"({len(refused)} refused 503), statuses {statuses}; the first 202 {recovered:.1f} s "
          "after the server was up")  # fmt: skip
    assert statuses == [202, 503], "only 202 and 503: never a 500"
    assert len(refused) >= len(during) - 2, "while it was gone, intake refused"
    for headers, text in refused:
        assert headers["Content-Type"].startswith("application/problem+json")
        assert int(headers["Retry-After"]) >= 1
        assert "send it again after 5 s" in text
    assert readback == [200] * len(readback), "every 202 reads back"
    assert message, "the scheduler sends again after the outage"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB filesystem (tmpfs) for the database; skipped where mounting is not allowed."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(  # noqa: S603 - fixed arguments
        ["/usr/bin/mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["/usr/bin/umount", "-l", str(where)], check=False)  # noqa: S603


async def test_a_full_disk_is_refused_507_and_leaves_sqlite_sound(
    tmp_path: Path, small_disk: Path, faults: Faults
) -> None:
    keys = Keys()
    keys.add("observatory", "reports:write", "read")
    database = small_disk / "dispatcher.db"
    settings = settings_for(tmp_path, keys, db_url=f"sqlite+aiosqlite:///{database}")
    acknowledged: list[int] = []
    statuses: Counter[int] = Counter()
    async with running(settings, keys) as app:
        n = 0
        while statuses[507] < 5:
            assert n < 200_000, "the disk filled"
            batch = []
            for _ in range(faults.rng.randint(50, 200)):
                n += 1
                item = report(n, IDLEB)
                item["notes"] = "x" * 400  # fills the disk sooner
                batch.append(item)
            status, answer = await app.post("/v1/reports", batch, key="observatory")
            statuses[status] += 1
            if status == 200:
                acknowledged += [
                    int(batch[r["index"]]["id"][1:]) for r in answer["results"]
                    if r["status"] == 202
                ]  # fmt: skip
            else:
                assert status in (503, 507), (status, answer)
                assert "send it again after 60 s" in answer["detail"]
        # Reads still work on a full disk.
        status, _ = await app.get(f"/v1/reports/observatory/r{acknowledged[-1]}",
                                  key="observatory")  # fmt: skip
        assert status == 200

    print(f"{len(acknowledged)} reports stored before the disk filled; answers {dict(statuses)}")
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {int(i[1:]) for (i,) in db.execute("SELECT ext_id FROM reports")}
    assert set(acknowledged) <= stored, "every report answered 202 is in the file"
    assert statuses[500] == 0
