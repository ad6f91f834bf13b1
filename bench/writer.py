"""The SQLite writer alone: what a report costs it, by transaction size and table size.

Runs the writer process's own code (`Committer`) in this process on a fresh SQLite file
with the shipped rules: reports as ingest makes them (40 sources, 5 kinds, spread over Idleb
and Aleppo), in their wire form, committed `--per-transaction` at a time, as the service's
group commit would under load. Prints microseconds per report for each block of reports
written, so that the cost as the tables and the incident memory grow shows.

    .venv/bin/python bench/writer.py [--reports 150000] [--per-transaction 3000]
"""

from __future__ import annotations

import argparse
import gc
import pickle
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.incidents import MergeRule
from dispatcher.intake import parse_report, to_report
from dispatcher.rules.load import load_rules
from dispatcher.store import db
from dispatcher.store.writer import REPORTS, Committer
from dispatcher.store.writer_wire import ReportWrite, encode_write
from dispatcher.targets import Router

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["airstrike", "shelling", "barrel_bomb", "missile", "explosion"]


def wire_jobs(n: int, per_request: int, now: datetime) -> list[tuple[str, object]]:
    rules = load_rules(ROOT / "rules")
    router = Router(rules)
    rng = random.Random(1)
    jobs: list[tuple[str, object]] = []
    for start in range(0, n, per_request):
        items = []
        for i in range(start, min(n, start + per_request)):
            wire = parse_report(
                {
                    "id": f"r-{i}",
                    "source": f"src-{rng.randint(1, 40)}",
                    "kind": rng.choice(KINDS),
                    "occurred_at": now.isoformat(),
                    "location": {"lat": 35.4 + rng.random() * 1.3, "lon": 36 + rng.random() * 1.8},
                    "casualties": {"killed": rng.randint(0, 3), "injured": rng.randint(0, 9)},
                },
                now=now,
            )
            assert not isinstance(wire, list)
            assert wire.location is not None
            region = rules.locate(None, wire.location.lat, wire.location.lon)
            report = to_report(wire, region=region)
            items.append((report, router(report).targets))
        job = encode_write(ReportWrite(items, now, "bench", rules.version))
        jobs.append((REPORTS, pickle.loads(pickle.dumps(job))))  # noqa: S301 - as sent
    return jobs


def reports_in(job: tuple[str, object]) -> int:
    items = job[1][0]  # type: ignore[index]  # the wire form of a report write
    return len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reports", type=int, default=150_000)
    ap.add_argument("--per-transaction", type=int, default=3000)
    ap.add_argument("--per-request", type=int, default=100)
    ap.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    args = ap.parse_args()
    now = datetime.now(UTC)
    jobs = wire_jobs(args.reports, args.per_request, now)
    per_txn = max(1, args.per_transaction // args.per_request)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/writer.db"
        import asyncio

        async def migrate() -> None:
            engine = db.create_engine(url)
            await db.upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        committer = Committer(db.create_sync_writer(url, args.synchronous), MergeRule())
        gc.freeze()  # as the writer process does after start-up
        print(
            f"{args.reports} reports, {args.per_request} a request, "
            f"{per_txn * args.per_request} a transaction, synchronous={args.synchronous}"
        )
        block = max(per_txn, len(jobs) // 5)
        for start in range(0, len(jobs), block):
            part = jobs[start : start + block]
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(part), per_txn):
                answers = committer.run(part[i : i + per_txn])
                assert all(ok for ok, _ in answers), answers
            n = sum(reports_in(j) for j in part)
            done = sum(reports_in(j) for j in jobs[: start + len(part)])
            print(
                f"  reports {done - n:>7}-{done:<7}"
                f" {(time.perf_counter() - wall) / n * 1e6:6.1f} us"
                f" a report ({(time.process_time() - cpu) / n * 1e6:5.1f} us CPU),"
                f" {len(committer.memory.index or ())} incidents in memory"
            )
        committer.close()


if __name__ == "__main__":
    main()
