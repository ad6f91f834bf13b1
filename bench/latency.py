"""Acceptance-to-push latency of immediate routes, under a background load of routine reports.

Starts `dispatcher serve` (SQLite, synchronous=FULL, the shipped rules, whose `mass-casualty`
route is immediate) with firebase-admin pointed at the FCM emulator, run here in the bench
process. A duty officer's phone registers; then, while routine reports arrive at a steady
rate (from a separate process, so that the emulator's answers are not held up by the load
generator), a report with 10 killed is posted every `--probe-every` seconds and the time
until its push reaches the emulator is taken, from the moment the POST is sent and from the
moment its 202 arrives.

    .venv/bin/python bench/latency.py [--seconds 20] [--background 200] [--probe-every 0.2]
        [--db-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import random
import signal
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import service
from service import cpu_seconds

from dispatcher.testing.fcm_emulator import FcmEmulator, ReceivedMessage

ROOT = Path(__file__).resolve().parents[1]
WRITER, PHONE = "bench-latency-writer", "bench-latency-phone"
OFFICER = "central-duty-officer"  # the shipped rules' immediate route alerts this leader


def keys() -> list[dict[str, Any]]:
    def entry(key: str, scopes: list[str], leader: str | None = None) -> dict[str, Any]:
        return {"name": key, "sha256": hashlib.sha256(key.encode()).hexdigest(),
                "scopes": scopes, "leader": leader}  # fmt: skip

    return [entry(WRITER, ["reports:write", "read"]), entry(PHONE, ["devices:write"], OFFICER)]


def start(tmp: Path, emu: FcmEmulator, db_url: str | None) -> tuple[subprocess.Popen[str], str]:
    env = {
        "DISPATCHER_SERVER__PORT": "0",
        "DISPATCHER_STORAGE__URL": db_url or f"sqlite+aiosqlite:///{tmp / 'latency.db'}",
        "DISPATCHER_RULES__PATH": str(ROOT / "rules"),
        "DISPATCHER_AUTH__KEYS": json.dumps(keys()),
        "DISPATCHER_PUSH__FCM__CREDENTIALS": str(emu.write_service_account(tmp / "sa.json")),
        "DISPATCHER_PUSH__FCM__ENDPOINT": emu.base_url,
    }
    return service.start(env, tmp / "server.log")


def report(n: int, *, killed: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": f"lat-{n}",
        "source": f"src-{rng.randint(1, 40)}",
        "kind": rng.choice(["airstrike", "shelling", "missile"]),
        "occurred_at": datetime.now(UTC).isoformat(),
        # Spread over Idleb and Aleppo so that each is its own strike.
        "location": {"lat": 35.4 + rng.random() * 1.3, "lon": 36.0 + rng.random() * 1.8},
        "casualties": {"killed": killed, "injured": rng.randint(0, 9)},
    }


def background(url: str, rate: float, seconds: float, out: Any) -> None:
    """Routine reports at a steady rate, in a process of its own; sends back (posted, refused)."""

    async def go() -> tuple[int, int]:
        rng = random.Random(5)
        writer = {"Authorization": f"Bearer {WRITER}"}
        refused = 0
        async with aiohttp.ClientSession() as http:

            async def post(body: dict[str, Any]) -> None:
                nonlocal refused
                async with http.post(f"{url}/v1/reports", json=body, headers=writer) as r:
                    refused += r.status != 202

            tasks: set[asyncio.Task[None]] = set()
            began = time.perf_counter()
            n = 0
            while (now := time.perf_counter()) < began + seconds:
                while n < (now - began) * rate:
                    n += 1
                    body = report(n, killed=rng.randint(0, 3), rng=rng)
                    tasks.add(asyncio.create_task(post(body)))
                tasks = {t for t in tasks if not t.done()}
                await asyncio.sleep(0.002)
            await asyncio.gather(*tasks)
            return n, refused

    out.send(asyncio.run(go()))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(11)
    async with FcmEmulator() as emu, aiohttp.ClientSession() as http:
        arrived: dict[str, float] = {}

        def on_message(msg: ReceivedMessage) -> None:
            now = time.perf_counter()
            for incident in msg.data.get("incidents", "").split(","):
                arrived.setdefault(incident, now)

        emu.on_message = on_message
        with tempfile.TemporaryDirectory() as tmp_name:
            proc, url = start(Path(tmp_name), emu, args.db_url)
            try:
                auth = {"Authorization": f"Bearer {PHONE}"}
                device = {"token": emu.issue_token(), "platform": "android", "locale": "en"}
                async with http.post(f"{url}/v1/devices", json=device, headers=auth) as resp:
                    assert resp.status == 201, await resp.text()
                writer = {"Authorization": f"Bearer {WRITER}"}
                sent: dict[str, tuple[float, float]] = {}  # incident -> (POST sent, 202 back)
                errors = 0

                async def probe(i: int) -> None:
                    nonlocal errors
                    body = report(10_000_000 + i, killed=12, rng=rng)
                    start_at = time.perf_counter()
                    async with http.post(f"{url}/v1/reports", json=body, headers=writer) as r:
                        if r.status != 202:
                            errors += 1
                            return
                        answer = await r.json()
                    sent[answer["report"]["incident"]] = (start_at, time.perf_counter())

                receive, send = multiprocessing.Pipe(duplex=False)
                load = multiprocessing.get_context("spawn").Process(
                    target=background, args=(url, args.background, args.seconds, send)
                )
                load.start()
                cpu0 = cpu_seconds(proc.pid)
                began = time.perf_counter()
                tasks: set[asyncio.Task[None]] = set()
                await asyncio.sleep(0.5)
                probes = 0
                while time.perf_counter() < began + args.seconds - 0.5:
                    tasks.add(asyncio.create_task(probe(probes)))
                    probes += 1
                    await asyncio.sleep(args.probe_every)
                await asyncio.gather(*tasks)
                n, refused = await asyncio.to_thread(receive.recv)
                await asyncio.to_thread(load.join)
                errors += refused
                await asyncio.sleep(2)  # the last pushes
                wall = time.perf_counter() - began
                cpu = cpu_seconds(proc.pid) - cpu0
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    from_post = [(arrived[i] - s) * 1000 for i, (s, _) in sent.items() if i in arrived]
    from_202 = [(arrived[i] - a) * 1000 for i, (_, a) in sent.items() if i in arrived]
    missing = sum(1 for i in sent if i not in arrived)
    print(f"background: {n / args.seconds:.0f} routine reports/s for {args.seconds} s "
          f"({errors} not accepted); server CPU {cpu / wall * 100:.0f}% of one core")  # fmt: skip
    print(f"immediate reports: {len(sent)} posted, {len(from_post)} pushed, {missing} not pushed")
    for label, xs in (
        ("POST sent -> push at FCM", from_post),
        ("202 back -> push at FCM", from_202),
    ):
        if xs:
            print(f"  {label}: p50 {statistics.median(xs):6.1f} ms  p90 {pct(xs, 0.9):6.1f} ms  "
                  f"p99 {pct(xs, 0.99):6.1f} ms  max {max(xs):6.1f} ms")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--background", type=float, default=200, help="routine reports per second")
    ap.add_argument("--probe-every", type=float, default=0.2, help="seconds between probes")
    ap.add_argument("--db-url", default=None, help="default: a fresh SQLite file")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
