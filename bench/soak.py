"""Soak: reports at a steady rate for minutes, the service's memory sampled as it goes.

Overload is refused (503), not absorbed; below the bound, a service that keeps up must also
keep its memory flat: no cache, queue or log that grows with the reports it has seen. This
runs `dispatcher serve` (SQLite by default, its own process and its writer process) on the
shipped rules, posts `--rate` single reports a second for `--minutes`, and samples the RSS
of the service and of its writer (from /proc) every `--every` seconds. It prints the
samples, the answers, and the growth from the first minute to the last.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 50] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import service

KEY = "soak-key"
PLACES = [(35.93, 36.63), (36.2, 36.6), (36.12, 36.52), (35.8, 36.3)]  # Idleb governorate


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of a process and of its live descendants (the SQLite writer and the
    server it is forked from), in MB."""
    return _rss(pid), sum(_rss(p) for p in _children(pid))


def _rss(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if ppid == pid:
            found += [int(p), *_children(int(p))]
    return found


async def soak(url: str, pid: int, minutes: float, rate: float, every: float) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    answers: Counter[int] = Counter()
    samples: list[tuple[float, tuple[float, float]]] = []
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + minutes * 60
    sent = 0
    pending: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as http:

        async def post(n: int) -> None:
            lat, lon = rng.choice(PLACES)
            casualties = {"killed": rng.randrange(4), "injured": rng.randrange(9)}
            body = {"id": f"soak-{n}", "source": f"observer-{n % 7}", "kind": "airstrike",
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "location": {"lat": lat + rng.uniform(0, 0.05), "lon": lon},
                    "casualties": casualties}  # fmt: skip
            async with http.post(url + "/v1/reports", json=body, headers=headers) as r:
                answers[r.status] += 1

        next_sample = start
        while (now := loop.time()) < end:
            if now >= next_sample:
                samples.append((now - start, rss_mb(pid)))
                own, children = samples[-1][1]
                print(f"{now - start:6.0f} s  {sent:7d} sent  RSS {own:6.1f} MB service, "
                      f"{children:6.1f} MB writer  answers {dict(answers)}",
                      flush=True)  # fmt: skip
                next_sample += every
            due = int((now - start) * rate)
            while sent < due:
                sent += 1
                task = asyncio.create_task(post(sent))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.sleep(0.01)
        await asyncio.gather(*pending)
    samples.append((loop.time() - start, rss_mb(pid)))
    print(f"\n{sent} reports in {minutes:g} min at {rate:g}/s; answers {dict(answers)}")
    for part, name in ((0, "service"), (1, "writer")):
        first = [mb[part] for t, mb in samples if t <= 60]
        last = [mb[part] for t, mb in samples if t >= samples[-1][0] - 60]
        print(f"RSS of the {name}: first minute {min(first):.1f}-{max(first):.1f} MB, "
              f"last minute {min(last):.1f}-{max(last):.1f} MB, "
              f"growth {sum(last) / len(last) - sum(first) / len(first):+.1f} MB")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--rate", type=float, default=50, help="reports a second")
    p.add_argument("--every", type=float, default=10, help="seconds between RSS samples")
    p.add_argument("--postgres", help="a PostgreSQL URL (a database of its own) instead of SQLite")
    p.add_argument(
        "--merge-window",
        default="15m",
        help="incidents.merge_window: how long recent incidents are kept in memory",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.postgres or f"sqlite+aiosqlite:///{tmp}/soak.db"
        key = {"name": "soak", "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
               "scopes": ["reports:write"]}  # fmt: skip
        env = {
            "DISPATCHER_SERVER__PORT": "0",
            "DISPATCHER_STORAGE__URL": db,
            "DISPATCHER_RULES__PATH": str(service.ROOT / "rules"),
            "DISPATCHER_AUTH__KEYS": json.dumps([key]),
            "DISPATCHER_INCIDENTS__MERGE_WINDOW": args.merge_window,
        }
        proc, url = service.start(env, Path(tmp) / "service.log", cwd=Path(tmp))
        try:
            time.sleep(1)  # the writer process starts at the first write
            asyncio.run(soak(url, proc.pid, args.minutes, args.rate, args.every))
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
