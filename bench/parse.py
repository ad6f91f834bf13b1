"""What parsing a report costs on the intake's fast path, in microseconds, in-process.

One report (`parse_report_json`), a batch of 100 (`parse_batch_json`, per report), the
general path (stdlib `json`, then validation) for comparison, and the repeated-key check
alone. The best of five repeats, each of many calls. Runs on older checkouts too (to
compare: `git archive REV | tar -x -C /tmp/rev; PYTHONPATH=/tmp/rev python bench/parse.py`):

    .venv/bin/python bench/parse.py
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from datetime import UTC, datetime

from dispatcher import intake
from dispatcher.intake import ReportIn, parse_batch_json, parse_report, parse_report_json

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
REPORT = {
    "id": "obs-1",
    "source": "observatory",
    "kind": "airstrike",
    "occurred_at": "2026-11-24T14:50:00+03:00",
    "location": {"lat": 36.1, "lon": 36.6},
    "casualties": {"killed": 2, "injured": 5},
    "notes": "two buildings hit near the market",
}


def best(fn: Callable[[], object], calls: int) -> float:
    """Microseconds a call, the best of five repeats."""
    return min(timeit.repeat(fn, number=calls, repeat=5)) / calls * 1e6


def main() -> None:
    one = json.dumps(REPORT).encode()
    batch = json.dumps([{**REPORT, "id": f"obs-{i}"} for i in range(100)]).encode()
    parsed = ReportIn.model_validate_json(one)
    assert isinstance(parse_report_json(one, now=NOW), ReportIn), "the fast path takes it"
    fast = best(lambda: parse_report_json(one, now=NOW), 20_000)
    print(f"one report, fast path:     {fast:7.2f} us")
    per = best(lambda: parse_batch_json(batch, now=NOW), 200) / 100
    print(f"batch of 100, per report:  {per:7.2f} us")
    general = best(lambda: parse_report(json.loads(one), now=NOW), 20_000)
    print(f"one report, general path:  {general:7.2f} us (stdlib json, then validation)")
    check = getattr(intake, "no_duplicate_keys", None)  # absent before the strict wire
    if check is not None:
        alone = best(lambda: check(one, [parsed]), 50_000)
        print(f"repeated-key check alone:  {alone:7.2f} us")


if __name__ == "__main__":
    main()
