"""What the benches share: starting `dispatcher serve` as a real process, reading its CPU,
and timing a whole fan-out through it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def start(
    env: dict[str, str], log: Path, cwd: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`dispatcher serve` on the shipped config with `env` added (set a port of 0); the
    process and the URL it says it listens on. Its log goes to `log`. A bench never pushes
    to Google: GOOGLE_APPLICATION_CREDENTIALS is not passed on."""
    env = {**os.environ, **env}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    proc = subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, "-m", "dispatcher", "serve", "--config", str(ROOT / "config.yaml")],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),  # noqa: SIM115 - lives as long as the process
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    m = re.match(r"dispatcher listening on (http://\S+)", first)
    if not m:
        proc.kill()
        raise SystemExit(f"the service did not start: {first!r}; see {log}")
    return proc, m.group(1)


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds (user and system, from /proc) of a process and of its live descendants:
    the service's SQLite writer is a process of its own."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {p: st for p in map(int, filter(str.isdigit, os.listdir("/proc")))
             if (st := _stat(p)) is not None}  # fmt: skip
    tree, grew = {pid}, True
    while grew:
        more = {p for p, st in stats.items() if int(st[1]) in tree} - tree
        tree |= more
        grew = bool(more)
    used = {p: (int(stats[p][11]) + int(stats[p][12])) / tick for p in tree if p in stats}
    own = used.pop(pid, 0.0)
    return own, sum(used.values())


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live descendants."""
    return sum(cpu_split(pid))


def calibrate() -> float:
    """Milliseconds this machine takes for a fixed piece of pure Python (best of five).
    Machines like this one run up to 1.5x slower at times; printed beside the figures, it
    tells two runs' machines apart."""
    import time

    def work() -> int:
        total = 0
        for i in range(2_000_000):
            total += i % 7
        return total

    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best * 1000


async def fan_out(
    api: str,
    *,
    service_pid: int,
    emulator_pid: int,
    devices: list[dict[str, Any]],
    phone_key: str,
    writer_key: str,
    sent_metric: str,
    report_id: str,
    noun: str,
    wait_at_most: float,
) -> None:
    """The whole service's fan-out: register `devices` (POST /v1/devices bodies) for the duty
    officer, post one report with 12 killed (an immediate route), and poll `/metrics` until
    `sent_metric` counts every push; prints pushes/s and both processes' CPU."""
    import asyncio
    import time

    import aiohttp

    async with aiohttp.ClientSession() as http:
        limit = asyncio.Semaphore(32)

        async def register(body: dict[str, Any]) -> None:
            headers = {"Authorization": f"Bearer {phone_key}"}
            async with limit, http.post(f"{api}/v1/devices", json=body, headers=headers) as r:
                assert r.status == 201, await r.text()

        await asyncio.gather(*(register(d) for d in devices))
        reader = {"Authorization": f"Bearer {writer_key}"}

        async def sent() -> float:
            async with http.get(f"{api}/metrics", headers=reader) as r:
                text = await r.text()
            m = re.search(sent_metric, text)
            return float(m.group(1)) if m else 0.0

        report = {
            "id": report_id, "source": "bench", "kind": "airstrike",
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "location": {"lat": 35.93, "lon": 36.63}, "casualties": {"killed": 12},
        }  # fmt: skip
        c0, e0, t0 = cpu_seconds(service_pid), cpu_seconds(emulator_pid), time.perf_counter()
        async with http.post(f"{api}/v1/reports", json=report, headers=reader) as r:
            assert r.status == 202, await r.text()
        # The service is another process: its counter is polled.
        while (done := await sent()) < len(devices) and time.perf_counter() < t0 + wait_at_most:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        wall = time.perf_counter() - t0
        print(f"the service, one immediate report to {len(devices)} {noun}: {done:.0f} sent "
              f"in {wall:.2f} s = {done / wall:.0f} pushes/s; service CPU "
              f"{(cpu_seconds(service_pid) - c0) / wall:.0%}, emulator CPU "
              f"{(cpu_seconds(emulator_pid) - e0) / wall:.0%}")  # fmt: skip
