"""The route tree: which routes, and so which teams, a report reaches. Pure.

Alertmanager's semantics: a report walks down from the root; at each node the children are
tried in order and the first that matches takes it, unless that child says `continue`, in
which case the later siblings are tried too; a node none of whose children match is itself
the match. Children inherit receiver, group_by and timings from their parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from dispatcher.model import UNASSIGNED, Report


@dataclass(frozen=True, slots=True)
class Matchers:
    """What a route asks of a report; an empty matcher asks nothing.

    `regions` match a region and everything below it; a report in no region ("unassigned")
    matches only routes that ask nothing of the region.
    """

    regions: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()

    def is_empty(self) -> bool:
        return not (self.regions or self.kinds)

    def matches(self, report: Report, region_path: tuple[str, ...]) -> bool:
        if self.kinds and report.kind not in self.kinds:
            return False
        if self.regions:
            if report.region == UNASSIGNED:
                return False
            if not self.regions.intersection(region_path):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Route:
    id: str  # the route's name, or its path in the tree ("root", "root.0.1")
    receiver: str  # a team id
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    matchers: Matchers = Matchers()
    continue_: bool = False
    children: tuple[Route, ...] = field(default_factory=tuple)
    where: str = ""  # file:line of the route, for messages


def match(root: Route, report: Report, region_path: tuple[str, ...]) -> list[Route]:
    """The routes a report reaches, in tree order (the root matches every report)."""
    return _match(root, report, region_path)


def _match(node: Route, report: Report, region_path: tuple[str, ...]) -> list[Route]:
    found: list[Route] = []
    for child in node.children:
        if not child.matchers.matches(report, region_path):
            continue
        found.extend(_match(child, report, region_path))
        if not child.continue_:
            break
    return found or [node]


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
