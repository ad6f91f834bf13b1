"""What a surge group's decision costs the event loop, by the incidents its group holds.

Builds a `GroupTally` of N incidents spread evenly over the last hour (so half fall in a
30-minute window), then times what a surge group's flush does with it besides reading:
pick the incidents near the window (pipeline._flush_surge), and `surge.decide`. A surge
group under a flood is looked at every scheduler tick, so this is paid once a tick per
surging group.

    .venv/bin/python bench/surge.py [--incidents 1000 10000 30000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from dispatcher.group import GroupTally
from dispatcher.model import Casualties, Report
from dispatcher.surge import SurgeRule, SurgeState, decide

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
    parser.add_argument("--incidents", type=int, nargs="+", default=[1000, 10000, 30000])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    now = T0 + timedelta(hours=1)
    for n in args.incidents:
        tally = tally_of(n)
        best = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            edge = (now - RULE.within).timestamp() - 1.0
            near = [
                datetime.fromtimestamp(ts, UTC) for _, ts, _, _ in tally.live_incidents(since=edge)
            ]
            decision = decide(RULE, near, SurgeState(), now, timedelta(minutes=10))
            best = min(best, time.perf_counter() - start)
        print(f"{n:>7} incidents ({decision.count} in the window): {best * 1000:6.2f} ms "
              "a decision (best of the rounds)")  # fmt: skip


if __name__ == "__main__":
    main()
