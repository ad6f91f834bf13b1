"""Surges in a replay: the surge alerts a rule set would have opened over recorded reports,
for `dispatcher rules diff --reports`. Pure.

Reports are taken in the order they occurred, as if each arrived when it occurred. They are
merged into incidents as the service merges them (a named incident, or one of the same kind
within the default merge radius and window that no report of the same source joined), a
later revision replaces an earlier one and a retraction stops an incident counting. Each
surge route's groups then decide (dispatcher.surge.decide) at every report they take and
at every wakeup in between, so a surge opens at the report that reaches the threshold (the
route's group_wait, a tick in the service, is left out) and subsides when its incidents
leave the window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from dispatcher.incidents import IncidentIndex, MergeRule, pick
from dispatcher.model import Report
from dispatcher.route import Route
from dispatcher.rules.load import RuleSet
from dispatcher.surge import SurgeState, after, decide

MAX_STEPS = 1_000_000  # decisions in one replay; a guard, far above any recorded day


@dataclass(frozen=True, slots=True)
class SurgeAlert:
    """One surge alert: opened, told again `repeats` times, subsided (None: still open at
    the end of the replay)."""

    route: str
    receiver: str
    group: tuple[tuple[str, str], ...]
    opened_at: datetime
    subsided_at: datetime | None
    peak: int  # the most incidents it counted at once, as told
    repeats: int

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.group) or "one group"
        until = f"{self.subsided_at:%H:%M %Z}" if self.subsided_at else "still open"
        return (
            f"{self.route} ({where}): {self.opened_at:%Y-%m-%d %H:%M}-{until}, "
            f"up to {self.peak} incidents, told again {self.repeats} times"
        )


@dataclass
class _Group:
    route: Route
    labels: tuple[tuple[str, str], ...]
    members: dict[str, tuple[str, datetime, bool]] = field(default_factory=dict)  # report
    state: SurgeState = field(default_factory=SurgeState)
    wakeup: datetime | None = None
    opened: SurgeAlert | None = None

    def times(self) -> list[datetime]:
        """When each live incident occurred (its earliest live report)."""
        first: dict[str, datetime] = {}
        for incident, at, live in self.members.values():
            if live and (incident not in first or at < first[incident]):
                first[incident] = at
        return list(first.values())


def replay(rules: RuleSet, reports: Iterable[Report]) -> list[SurgeAlert]:
    """The surge alerts `rules` would open over `reports`, in the order they opened."""
    ordered = sorted(reports, key=lambda r: (r.occurred_at, r.source, r.id, r.revision))
    if not ordered:
        return []
    merge = MergeRule()
    index = IncidentIndex(merge, since=ordered[0].occurred_at - merge.window)
    latest: dict[str, int] = {}  # report key -> revision
    incident_of: dict[str, str] = {}
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], _Group] = {}
    alerts: list[SurgeAlert] = []
    steps = 0

    def step(key: tuple[str, tuple[tuple[str, str], ...]], now: datetime) -> None:
        nonlocal steps
        steps += 1
        if steps > MAX_STEPS:
            raise RuntimeError("surge replay did not settle")
        g = groups[key]
        rule = g.route.surge
        assert rule is not None
        d = decide(rule, g.times(), g.state, now, g.route.group_interval)
        if d.action == "open":
            g.opened = SurgeAlert(g.route.id, g.route.receiver, g.labels, now, None, d.count, 0)
        elif d.action == "repeat" and g.opened is not None:
            o = g.opened
            g.opened = SurgeAlert(o.route, o.receiver, o.group, o.opened_at, None,
                                  max(o.peak, d.count), o.repeats + 1)  # fmt: skip
        elif d.action == "subside" and g.opened is not None:
            o = g.opened
            alerts.append(SurgeAlert(o.route, o.receiver, o.group, o.opened_at, now, o.peak,
                                     o.repeats))  # fmt: skip
            g.opened = None
        elif d.action == "close":
            del groups[key]
            return
        g.state, g.wakeup = after(d, g.state, now), d.wakeup

    def advance(until: datetime | None) -> None:
        while True:
            due = [(g.wakeup, k) for k, g in groups.items() if g.wakeup is not None]
            if not due:
                return
            at, key = min(due)
            if until is not None and at > until:
                return
            step(key, at)

    for report in ordered:
        rkey = f"{report.source}/{report.id}"
        if latest.get(rkey, 0) >= report.revision:
            continue
        latest[rkey] = report.revision
        advance(report.occurred_at)
        incident = incident_of.get(rkey)
        if incident is None:
            incident = report.incident or pick(report, index.candidates(report), merge) or rkey
            incident_of[rkey] = incident
            if report.location is not None and incident not in index:
                index.add(incident, report.kind, report.location, report.occurred_at)
            index.join(incident, report.source)
        for route in rules.surges_for(report):
            labels = rules.group_labels(route, report)
            key = (route.id, labels)
            g = groups.setdefault(key, _Group(route, labels))
            g.members[rkey] = (incident, report.occurred_at, report.status != "retracted")
            step(key, report.occurred_at)
    advance(None)
    alerts.extend(g.opened for g in groups.values() if g.opened is not None)
    return sorted(alerts, key=lambda a: (a.opened_at, a.route, a.group))
