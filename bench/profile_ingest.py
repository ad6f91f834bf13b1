"""Where ingest time goes: cProfile over the pipeline's accept path, no HTTP.

    .venv/bin/python bench/profile_ingest.py [--reports 4000] [--batch 100]

Builds the service on a fresh SQLite file with the shipped rules and feeds it validated
reports in batches, printing milliseconds per report and the top of the profile. The
profile is of the service's own process; the SQLite writer runs in a process of its own
(look at it with `py-spy record --pid <its pid>`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.app import build
from dispatcher.intake import ReportIn, parse_report
from dispatcher.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def reports(n: int, now: datetime) -> list[ReportIn]:
    out = []
    for i in range(n):
        parsed = parse_report(
            {
                "id": f"r{i}",
                "source": f"src-{random.randint(1, 40)}",
                "kind": random.choice(["airstrike", "shelling", "missile"]),
                "occurred_at": now.isoformat(),
                "location": {
                    "lat": 35.4 + random.random() * 1.3,
                    "lon": 36 + random.random() * 1.8,
                },
                "casualties": {"killed": random.randint(0, 3)},
            },
            now=now,
        )
        assert isinstance(parsed, ReportIn)
        out.append(parsed)
    return out


async def main(n: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            storage={"url": f"sqlite+aiosqlite:///{tmp}/profile.db"},
            rules={"path": ROOT / "rules"},
        )
        service = await build(settings)
        items = reports(n, datetime.now(UTC))
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.enable()
        for i in range(0, n, batch):
            await service.pipeline.accept_many(items[i : i + batch], key_name="profile")
        profile.disable()
        elapsed = time.perf_counter() - start
        await service.close()
    print(f"{elapsed / n * 1000:.2f} ms per report ({n} reports in batches of {batch})")
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    asyncio.run(main(args.reports, args.batch))
