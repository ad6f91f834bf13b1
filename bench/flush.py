"""What a digest of a big group costs the event loop: counting, summing and storing it.

Builds a `GroupTally` of N reports, each its own incident (as in `bench/ingest.py`, where
almost every report is), then times what a flush does with it: count them into a new tally
(a group's first flush, or the first after a restart), one more report joining, the summary
of what changed since the update the tally was told of (every flush but a group's first in
this process), the same against the state the last update stored (a first flush after a
restart, or after another instance's update), and the summary as the stored update.

    .venv/bin/python bench/flush.py [--incidents 1000 3000 30000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from dispatcher.group import GroupTally
from dispatcher.model import Casualties, Point, Report


def rows(n: int, now: datetime) -> list[tuple[int, Report]]:
    return [
        (
            i + 1,
            Report(
                source=f"src-{i % 40}",
                id=f"r-{i}",
                kind="airstrike",
                occurred_at=now + timedelta(milliseconds=i),
                region="SY07",
                casualties=Casualties(1, 2, 0, 0),
                status="reported",
                revision=1,
                location=Point(35.9, 36.6),
                given_region=None,
                notes=None,
                incident=f"inc-{i}",
            ),
        )
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--incidents", type=int, nargs="+", default=[1000, 3000, 30000])
    args = ap.parse_args()
    now = datetime.now(UTC)
    for n in args.incidents:
        joined = rows(n, now)
        t0 = time.perf_counter()
        tally = GroupTally()
        tally.add(joined)
        t1 = time.perf_counter()
        written = tally.summary(previous={}, previous_at=None)
        tally.told(1, written)
        state = written.to_json()["state"]
        _, first = joined[0]
        t2 = time.perf_counter()
        tally.add([(n + 1, first._replace(revision=2, casualties=Casualties(3, 2, 0, 0)))])
        t3 = time.perf_counter()
        summary = tally.summary(previous=None, previous_at=now)
        t4 = time.perf_counter()
        whole = tally.summary(previous=state, previous_at=now)
        t5 = time.perf_counter()
        summary.to_json()
        t6 = time.perf_counter()
        assert summary == whole
        assert summary.revised == ("inc-0",)
        print(
            f"{n:>7} incidents: count {1e3 * (t1 - t0):7.1f} ms, one more report"
            f" {1e3 * (t3 - t2):5.2f} ms, summary of what changed {1e3 * (t4 - t3):6.2f} ms,"
            f" against the stored state {1e3 * (t5 - t4):6.1f} ms,"
            f" stored form {1e3 * (t6 - t5):6.1f} ms"
        )


if __name__ == "__main__":
    main()
