"""Route -> group: the alert groups a report joins, remembered per rule set. Pure.

Which routes a report reaches and the labels of its group on each depend only on its kind,
status, source and region and on which of the tree's casualty thresholds it passes (on its
source only when a route matches or groups by source). A surge brings thousands of reports
a second with a few hundred such combinations, so each is worked out once per rule set
(walking the route tree, building the targets) and then looked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatcher.group import GroupTarget, Timing
from dispatcher.model import Report
from dispatcher.route import Route, Threshold
from dispatcher.rules.load import RuleSet
from dispatcher.surge import SURGE_LABEL

MAX_REMEMBERED = 100_000  # combinations; past this the memory starts again


@dataclass(frozen=True, slots=True)
class Routed:
    """Where a report goes: its groups, and the routes they belong to (in tree order)."""

    targets: tuple[GroupTarget, ...]
    routes: tuple[str, ...]
    immediate: tuple[bool, ...]  # per route: push each report at once
    surges: int = 0  # how many of the routes, the last ones, are surge routes


def _asks_source(route: Route) -> bool:
    """Whether the route or one below it matches or groups reports by their source."""
    m = route.matchers
    if m.sources or m.not_sources or "source" in route.group_by:
        return True
    return any(_asks_source(child) for child in route.children)


def _thresholds(route: Route) -> list[Threshold]:
    found = list(route.matchers.thresholds)
    for child in route.children:
        found.extend(_thresholds(child))
    return found


def timing_of(rules: RuleSet, route: Route) -> Timing:
    """The cadence of a route's groups. A surge group is looked at within group_wait of
    each report (what it says is dispatcher.surge's decision); it never reminds or
    escalates."""
    if route.surge is not None:
        return Timing(route.group_wait, route.group_wait, route.repeat_interval,
                      route.surge.within, None)  # fmt: skip
    return Timing(
        route.effective_wait,
        route.effective_interval,
        route.repeat_interval,
        route.close_after,
        rules.escalation_of(route.receiver),
    )


def receivers_by_route(rules: RuleSet) -> dict[str, tuple[str, Timing]]:
    """Each route's receiver and cadence: an open group of a route whose receiver is not
    its group's is handed over to it (a rules edit moved the route to another team)."""
    return {route.id: (route.receiver, timing_of(rules, route)) for route in rules.routes}


def reaches_team(rules: RuleSet, report: Report, team: str) -> bool:
    """Whether the rules send `report` to `team`: a route that alerts of it names the team,
    or one of the team's leaders (surge routes, which count rather than alert, aside)."""
    for route in rules.routes_for(report):
        if route.receiver == team:
            return True
        leader = rules.leaders.get(route.receiver)
        if leader is not None and leader.team == team:
            return True
    return False


def route_report(rules: RuleSet, report: Report) -> Routed:
    """The routes `report` reaches and the group it joins on each (the tree walked)."""
    # The routes that alert of it, then the surge routes it counts toward.
    surges = rules.surges_for(report)
    routes = rules.routes_for(report) + surges
    targets = tuple(
        GroupTarget(
            route_id=route.id,
            # A surge route's groups are marked as such in their labels.
            labels=(*rules.group_labels(route, report), *((SURGE_LABEL,) if route.surge else ())),
            receiver=route.receiver,
            timing=timing_of(rules, route),
        )
        for route in routes
    )
    return Routed(
        targets, tuple(r.id for r in routes), tuple(r.immediate for r in routes), len(surges)
    )


@dataclass
class Router:
    """`route_report` remembered for one rule set."""

    rules: RuleSet
    _thresholds: tuple[Threshold, ...] = field(init=False)
    # Whether the source picks the routes: rarely, and forty sources make forty times the
    # combinations to work out (most of a surge's reports missed the memory).
    _by_source: bool = field(init=False)
    _seen: dict[tuple[object, ...], Routed] = field(default_factory=dict)
    # One target object per group, however many combinations lead to it.
    _targets: dict[tuple[str, tuple[tuple[str, str], ...]], GroupTarget] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        # Distinct thresholds, each asked once per report.
        self._thresholds = tuple(dict.fromkeys(_thresholds(self.rules.root)))
        self._by_source = _asks_source(self.rules.root)

    def __call__(self, report: Report) -> Routed:
        key = (report.kind, report.status, report.source if self._by_source else None,
               report.region, *[t.holds(report) for t in self._thresholds])  # fmt: skip
        routed = self._seen.get(key)
        if routed is None:
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen.clear()
                self._targets.clear()
            routed = route_report(self.rules, report)
            targets = tuple(
                self._targets.setdefault((t.route_id, t.labels), t) for t in routed.targets
            )
            routed = self._seen[key] = Routed(
                targets, routed.routes, routed.immediate, routed.surges
            )
        return routed
