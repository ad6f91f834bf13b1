"""What a surge group's decision costs the event loop, by the incidents its group holds.

Builds a `GroupTally` of N incidents spread evenly over the last hour (so half fall in a
30-minute window), then times what a surge group's flush does with it besides reading:
count the window (`GroupTally.live_window`) and decide (`surge.decide_counted`), as at
every scheduler tick that finds the group due (a surge group under a flood: every tick);
and, for a push (open, repeat, subside: at most once per group_interval), list the
incidents in the window.

    .venv/bin/python bench/surge.py [--incidents 1000 10000 30000 100000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from dispatcher.group import GroupTally
from dispatcher.model import Casualties, Report
from dispatcher.surge import SurgeRule, SurgeState, decide_counted

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
RULE = SurgeRule(8, timedelta(minutes=30))


def tally_of(n: int) -> GroupTally:
    tally = GroupTally()
    step = 3600 / n
    tally.add(
        (i + 1, Report(f"src-{i % 40}", f"r-{i}", "airstrike", T0 + timedelta(seconds=i * step),
                       "SY0703", Casualties(killed=1), incident=f"inc-{i}"))
        for i in range(n)
    )  # fmt: skip
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, nargs="+", default=[1000, 10000, 30000, 100000])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    now = T0 + timedelta(hours=1)
    for n in args.incidents:
        tally = tally_of(n)
        best = listed = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            edge = (now - RULE.within).timestamp()
            count, oldest, newest = tally.live_window(edge)
            decision = decide_counted(
                RULE, count, _utc(oldest), _utc(newest), SurgeState(), now, timedelta(minutes=10)
            )
            best = min(best, time.perf_counter() - start)
            start = time.perf_counter()
            counted = [
                datetime.fromtimestamp(ts, UTC) for _, ts, _, _ in tally.live_incidents(edge)
            ]
            listed = min(listed, time.perf_counter() - start)
        assert len(counted) == decision.count
        print(
            f"{n:>7} incidents ({decision.count} in the window): {best * 1e6:6.1f} us a "
            f"decision, {listed * 1000:6.2f} ms listing them for a push (best of rounds)"
        )


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


if __name__ == "__main__":
    main()
