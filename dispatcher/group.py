"""Alert groups: when a group's next update is due, and what it says in numbers.

Pure decisions: plain values in, `now` passed in, no I/O. The store keeps the group's
timer; the scheduler asks `is_due`; the notify stage renders a `Summary` for each leader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dispatcher.model import Casualties, Report


@dataclass(frozen=True, slots=True)
class Timing:
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta


def next_flush_after_report(
    *,
    now: datetime,
    timing: Timing,
    pending: bool,
    next_flush_at: datetime | None,
    last_flush_at: datetime | None,
) -> datetime:
    """When an open group that just took a report should next send an update.

    A group waits `group_wait` before its first update, so the first few reports of a strike
    arrive together; after that it sends at most one update per `group_interval`.
    """
    if last_flush_at is None:
        # Still in its first wait: the first update is already scheduled.
        return next_flush_at if next_flush_at is not None else now + timing.group_wait
    if pending and next_flush_at is not None:
        return next_flush_at
    return max(now, last_flush_at + timing.group_interval)


def first_flush(now: datetime, timing: Timing) -> datetime:
    return now + timing.group_wait


def is_due(*, pending: bool, next_flush_at: datetime | None, now: datetime) -> bool:
    return pending and next_flush_at is not None and next_flush_at <= now


def report_key(report: Report) -> str:
    return f"{report.source}/{report.id}"


@dataclass(frozen=True, slots=True)
class Summary:
    """What one update of a group says: the change since the last update and the totals."""

    totals: Casualties  # over the live reports: latest revision, not retracted
    live_reports: int
    new: tuple[str, ...]  # report keys first seen in this update
    revised: tuple[str, ...]  # reports whose numbers changed since the last update
    retracted: tuple[str, ...]  # reports retracted since the last update
    kinds: tuple[tuple[str, int], ...]  # live reports per kind, most first
    regions: tuple[str, ...]  # regions of the live reports, most reported first
    since: datetime | None  # time of the previous update, if any
    revisions: Mapping[str, int] = field(default_factory=dict)  # key -> revision in this update

    @property
    def changed(self) -> bool:
        return bool(self.new or self.revised or self.retracted)

    def to_json(self) -> dict[str, Any]:
        return {
            "totals": {
                "killed": self.totals.killed,
                "injured": self.totals.injured,
                "trapped": self.totals.trapped,
                "rescued": self.totals.rescued,
            },
            "live_reports": self.live_reports,
            "new": list(self.new),
            "revised": list(self.revised),
            "retracted": list(self.retracted),
            "kinds": [list(k) for k in self.kinds],
            "regions": list(self.regions),
            "since": self.since.isoformat() if self.since else None,
            "revisions": dict(self.revisions),
        }


def latest_revisions(reports: Iterable[Report]) -> list[Report]:
    """The live revision of each report: the highest revision per (source, id)."""
    best: dict[str, Report] = {}
    for r in reports:
        key = report_key(r)
        if key not in best or r.revision > best[key].revision:
            best[key] = r
    return sorted(best.values(), key=lambda r: (r.occurred_at, report_key(r)))


def summarize(
    reports: Iterable[Report],
    *,
    previous_revisions: Mapping[str, int],
    previous_at: datetime | None,
) -> Summary:
    """Sum up a group's reports against what its previous update said.

    Counts take each report's latest revision once, so a corrected report revises a number and
    never adds twice; a retracted report counts for nothing.
    """
    latest = latest_revisions(reports)
    live = [r for r in latest if r.status != "retracted"]
    totals = sum((r.casualties for r in live), Casualties())
    new: list[str] = []
    revised: list[str] = []
    retracted: list[str] = []
    for r in latest:
        key = report_key(r)
        before = previous_revisions.get(key)
        if before is None:
            if r.status != "retracted":
                new.append(key)
        elif r.revision > before:
            (retracted if r.status == "retracted" else revised).append(key)
    kinds = Counter(r.kind for r in live)
    regions = Counter(r.region for r in live)
    return Summary(
        totals=totals,
        live_reports=len(live),
        new=tuple(new),
        revised=tuple(revised),
        retracted=tuple(retracted),
        kinds=tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        regions=tuple(r for r, _ in sorted(regions.items(), key=lambda kv: (-kv[1], kv[0]))),
        since=previous_at,
        revisions={report_key(r): r.revision for r in latest},
    )
