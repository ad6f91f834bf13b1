"""Soak: reports at a steady rate for minutes, the service's memory sampled as it goes.

Overload is refused (503), not absorbed; below the bound, a service that keeps up must also
keep its memory flat: no cache, queue or log that grows with the reports it has seen. This
runs `dispatcher serve` (SQLite by default, its own process and its writer process) on the
shipped rules, posts `--rate` single reports a second for `--minutes`, and samples the RSS
of the service and of its writer (from /proc) every `--every` seconds. It prints the
samples, the answers, and the growth from the first minute to the last.

`--trace` runs both processes under tracemalloc (slower: keep the rate modest) and, after
the warm-up and at the end, has each dump a snapshot; it prints what grew in between, by
the line that allocated it, in the service and in the writer.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 50] [--postgres URL] [--trace]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import tempfile
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import service

KEY = "soak-key"
PLACES = [(35.93, 36.63), (36.2, 36.6), (36.12, 36.52), (35.8, 36.3)]  # Idleb governorate


# Put on the PYTHONPATH of the service under --trace: tracemalloc from the start (the
# forkserver and the writer it forks inherit it), and a snapshot written on SIGUSR1.
TRACER = """
import os, signal, tracemalloc
_dir = os.environ.get("SOAK_TRACE_DIR")
if _dir:
    tracemalloc.start(int(os.environ.get("SOAK_TRACE_FRAMES", "8")))
    def _dump(signum, frame):
        snapshot = tracemalloc.take_snapshot()
        mine = f"{os.getpid()}-"
        n = len([f for f in os.listdir(_dir) if f.startswith(mine) and f.endswith(".snap")])
        snapshot.dump(os.path.join(_dir, f"{os.getpid()}-{n}.snap"))
        open(os.path.join(_dir, f"{os.getpid()}-{n}.done"), "w").close()
    signal.signal(signal.SIGUSR1, _dump)
"""


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


def _writer(pid: int) -> int | None:
    """The writer: the process the forkserver (the service's child) forked."""
    grandchildren = [g for c in _children(pid) for g in _children(c)]
    return grandchildren[0] if grandchildren else None


def _snapshot(trace: Path, pids: dict[str, int]) -> dict[str, Path]:
    """Have each process dump a tracemalloc snapshot; their files once written (blocks: run
    it in a thread)."""
    taken = {}
    for role, pid in pids.items():
        n = len(list(trace.glob(f"{pid}-*.snap")))
        os.kill(pid, signal.SIGUSR1)
        done = trace / f"{pid}-{n}.done"
        while not done.exists():
            time.sleep(0.2)
        taken[role] = trace / f"{pid}-{n}.snap"
    return taken


def grown(before: Path, after: Path, top: int = 12) -> list[str]:
    """What grew between two snapshots of one process, by the line that allocated it."""
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen *>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    old = tracemalloc.Snapshot.load(str(before)).filter_traces(ignore)
    new = tracemalloc.Snapshot.load(str(after)).filter_traces(ignore)
    total = sum(s.size_diff for s in new.compare_to(old, "filename"))
    lines = [f"  {total / 2**20:+.2f} MB traced in all"]
    for stat in [s for s in new.compare_to(old, "traceback") if s.size_diff > 0][:top]:
        frames = [f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback]
        lines.append(f"  {stat.size_diff / 2**10:+9.1f} KB {stat.count_diff:+7d} blocks  "
                     f"{' < '.join(reversed(frames[-5:]))}")  # fmt: skip
    return lines


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares growth of (seconds, MB) points, in MB a minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mm = sum(m for _, m in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return 60 * sum((t - mt) * (m - mm) for t, m in points) / var if var else 0.0


async def soak(
    url: str, pid: int, minutes: float, rate: float, every: float, warmup: float,
    trace: Path | None,
) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {KEY}"}
    answers: Counter[int] = Counter()
    samples: list[tuple[float, tuple[float, float]]] = []
    snapshots: list[dict[str, Path]] = []
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
            if trace is not None and not snapshots and now - start >= warmup:
                writer = _writer(pid)
                assert writer is not None, "no writer process"
                snapshots.append(
                    await asyncio.to_thread(_snapshot, trace, {"service": pid, "writer": writer})
                )
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
        after = [(t, mb[part]) for t, mb in samples if t >= warmup]
        warm = after[0] if after else samples[-1]
        print(f"RSS of the {name}: {samples[0][1][part]:.1f} MB at the start, "
              f"{warm[1]:.1f} MB after the warm-up ({warm[0]:.0f} s), "
              f"{samples[-1][1][part]:.1f} MB at the end; "
              f"after the warm-up {slope(after):+.2f} MB a minute "
              f"({len(after)} samples)")  # fmt: skip
    if trace is not None and snapshots:
        writer = _writer(pid)
        assert writer is not None, "no writer process"
        last = await asyncio.to_thread(_snapshot, trace, {"service": pid, "writer": writer})
        for role in ("service", "writer"):
            print(f"\nGrown in the {role} from {warmup:g} s to the end (tracemalloc):")
            print("\n".join(grown(snapshots[0][role], last[role])))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--rate", type=float, default=50, help="reports a second")
    p.add_argument("--every", type=float, default=10, help="seconds between RSS samples")
    p.add_argument(
        "--warmup",
        type=float,
        default=120,
        help="seconds before the growth is measured (caches fill to their bound)",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="tracemalloc snapshots of service and writer after the warm-up and at the end",
    )
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
        trace = None
        if args.trace:
            trace = Path(tmp) / "trace"
            trace.mkdir()
            (trace / "sitecustomize.py").write_text(TRACER)
            path = os.pathsep.join(filter(None, [str(trace), os.environ.get("PYTHONPATH")]))
            env |= {"SOAK_TRACE_DIR": str(trace), "PYTHONPATH": path}
        proc, url = service.start(env, Path(tmp) / "service.log", cwd=Path(tmp))
        try:
            time.sleep(1)  # the writer process starts at the first write
            asyncio.run(
                soak(url, proc.pid, args.minutes, args.rate, args.every, args.warmup, trace)
            )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
