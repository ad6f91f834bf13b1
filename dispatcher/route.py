"""The route tree: which routes, and so which teams, a report reaches. Pure.

Alertmanager's semantics: a report walks down from the root; at each node the children are
tried in order and the first that matches takes it, unless that child says `continue`, in
which case the later siblings are tried too; a node none of whose children match is itself
the match. Children inherit receiver, group_by and timings from their parent.

A surge route (`surge:`, see dispatcher.surge) counts what it matches and takes nothing away:
it always goes on to its later siblings as if it said `continue`, and a node whose only
matching children are surge routes is itself the match too.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from dispatcher.model import UNASSIGNED, Report
from dispatcher.surge import SurgeRule

OPERATORS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
COUNTS = ("killed", "injured", "trapped", "rescued")


@dataclass(frozen=True, slots=True)
class Threshold:
    field: str  # one of COUNTS
    op: str  # one of OPERATORS
    value: int

    def holds(self, report: Report) -> bool:
        return OPERATORS[self.op](getattr(report.casualties, self.field), self.value)

    def __str__(self) -> str:
        return f"{self.field} {self.op} {self.value}"


@dataclass(frozen=True, slots=True)
class Matchers:
    """What a route asks of a report; an empty matcher asks nothing. Every part must hold.

    `regions` match a region and everything below it; a report in no region ("unassigned")
    matches only routes that ask nothing of the region. The `not_` sets exclude: a report in
    a region below a `not_regions` entry, or of a `not_kinds` kind, does not match.
    """

    regions: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    thresholds: tuple[Threshold, ...] = ()
    not_regions: frozenset[str] = frozenset()
    not_kinds: frozenset[str] = frozenset()
    not_statuses: frozenset[str] = frozenset()
    not_sources: frozenset[str] = frozenset()

    def is_empty(self) -> bool:
        return self == Matchers()

    def only_regions_and_kinds(self) -> bool:
        return self == Matchers(regions=self.regions, kinds=self.kinds)

    def matches(self, report: Report, region_path: tuple[str, ...]) -> bool:
        if self.kinds and report.kind not in self.kinds:
            return False
        if self.statuses and report.status not in self.statuses:
            return False
        if self.sources and report.source not in self.sources:
            return False
        if self.regions:
            if report.region == UNASSIGNED:
                return False
            if not self.regions.intersection(region_path):
                return False
        if report.kind in self.not_kinds or report.status in self.not_statuses:
            return False
        if report.source in self.not_sources or self.not_regions.intersection(region_path):
            return False
        return all(t.holds(report) for t in self.thresholds)

    def describe(self) -> str:
        parts = []
        for name, values in (
            ("regions", self.regions),
            ("kinds", self.kinds),
            ("statuses", self.statuses),
            ("sources", self.sources),
        ):
            if values:
                parts.append(f"{name} in {sorted(values)}")
        parts.extend(str(t) for t in self.thresholds)
        for name, values in (
            ("regions", self.not_regions),
            ("kinds", self.not_kinds),
            ("statuses", self.not_statuses),
            ("sources", self.not_sources),
        ):
            if values:
                parts.append(f"{name} not in {sorted(values)}")
        return ", ".join(parts) or "every report"


@dataclass(frozen=True, slots=True)
class Route:
    id: str  # the route's name, or its path in the tree ("root", "root.0.1")
    receiver: str  # a team id, or one leader's id
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    ttl: timedelta = timedelta(hours=1)  # a push not delivered by then is dropped
    close_after: timedelta = timedelta(hours=1)  # a group this long without a report closes
    matchers: Matchers = Matchers()
    continue_: bool = False
    children: tuple[Route, ...] = field(default_factory=tuple)
    where: tuple[str, int, int] = ("", 0, 0)  # file, line, column of the route, for messages
    immediate: bool = False  # push each report at once, high priority, no group_wait
    # "minimal": the push carries no place, count or coordinates, only a neutral notice and a
    # reference; the leader's app fetches the update (GET /v1/groups/{id}/updates/{seq}).
    payload: str = "full"
    surge: SurgeRule | None = None  # a rate of incidents, not a report (dispatcher.surge)

    @property
    def effective_wait(self) -> timedelta:
        return timedelta(0) if self.immediate else self.group_wait

    @property
    def effective_interval(self) -> timedelta:
        return timedelta(0) if self.immediate else self.group_interval


@dataclass(frozen=True, slots=True)
class Inhibition:
    """While a group of a `source` route has pushed within `for_`, groups of the `target`
    routes in its region or below it hold their routine updates and reminders (as in
    Alertmanager: a mass-casualty alert quiets the digests it would drown)."""

    name: str
    source_routes: frozenset[str]
    target_routes: frozenset[str]
    for_: timedelta


def match(root: Route, report: Report, region_path: tuple[str, ...]) -> list[Route]:
    """The routes a report reaches, in tree order (the root matches every report); surge
    routes are left out (see `match_surges`)."""
    return [r for r in _match(root, report, region_path) if r.surge is None]


def match_surges(root: Route, report: Report, region_path: tuple[str, ...]) -> list[Route]:
    """The surge routes a report counts toward, in tree order."""
    return [r for r in _match(root, report, region_path) if r.surge is not None]


def _match(node: Route, report: Report, region_path: tuple[str, ...]) -> list[Route]:
    found: list[Route] = []
    taken = False  # by a route that is not a surge route
    for child in node.children:
        if not child.matchers.matches(report, region_path):
            continue
        if child.surge is not None:
            found.append(child)  # counts the report, and the later siblings are tried too
            continue
        found.extend(_match(child, report, region_path))
        taken = True
        if not child.continue_:
            break
    return found if taken else [node, *found]


def group_labels(
    route: Route, report: Report, region_path: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """The values that pick a report's alert group on `route`.

    `region` is the report's own region; `region:N` is its region taken up to depth N of the
    tree (0 = the top), so a route can group a governorate's districts together.
    """
    labels = []
    for label in route.group_by:
        if label == "region":
            labels.append(("region", report.region))
        elif label.startswith("region:"):
            depth = int(label.split(":", 1)[1])
            value = region_path[min(depth, len(region_path) - 1)] if region_path else UNASSIGNED
            labels.append(("region", value))
        elif label == "kind":
            labels.append(("kind", report.kind))
        elif label == "source":
            labels.append(("source", report.source))
    return tuple(labels)
