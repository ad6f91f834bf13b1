"""What a rule set does, shown to an operator: the tree, and where a report would go.

Pure: used by `dispatcher rules show` and `dispatcher rules test` (the dry run, like
Alertmanager's `amtool config routes test`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dispatcher.model import Report
from dispatcher.route import Route
from dispatcher.rules.durations import format_duration
from dispatcher.rules.load import RuleSet


def walk(node: Route, trail: tuple[Route, ...] = ()) -> Iterator[tuple[Route, tuple[Route, ...]]]:
    """Every route with the routes above it, in tree order."""
    yield node, trail
    for child in node.children:
        yield from walk(child, (*trail, node))


def show(rules: RuleSet) -> list[str]:
    """The route tree, one line per route."""
    lines = [f"rules version {rules.version}"]
    for route, trail in walk(rules.root):
        m = route.matchers.describe()
        timing = (
            "immediate, each report at once"
            if route.immediate
            else f"wait {format_duration(route.group_wait)}, "
            f"every {format_duration(route.group_interval)}, "
            f"repeat {format_duration(route.repeat_interval)}"
        ) + f", ttl {format_duration(route.ttl)}, close after {format_duration(route.close_after)}"
        extra = " (continue)" if route.continue_ else ""
        if route.surge is not None:
            m = f"surge of {route.surge}, {m}"
            timing = (
                f"wait {format_duration(route.group_wait)}, repeat at most every "
                f"{format_duration(route.group_interval)}, ttl {format_duration(route.ttl)}"
            )
            extra = ""
        lines.append(
            f"{'  ' * len(trail)}{route.id}: {m} -> {route.receiver}{extra}"
            f" [group by {', '.join(route.group_by) or 'nothing'}; {timing}]"
        )
    return lines


def explain(rules: RuleSet, report: Report) -> dict[str, Any]:
    """Where `report` goes: its region, each route it reaches with the path to it, and the
    team and leaders each route alerts."""
    matched = {id(r) for r in rules.routes_for(report) + rules.surges_for(report)}
    routes = []
    for route, trail in walk(rules.root):
        if id(route) not in matched:
            continue
        routes.append(
            {
                "route": route.id,
                "path": [r.id for r in trail] + [route.id],
                "receiver": route.receiver,
                "receiver_name": rules.receiver_name(route.receiver),
                "immediate": route.immediate,
                "surge": None
                if route.surge is None
                else {
                    "incidents_at_least": route.surge.at_least,
                    "within": format_duration(route.surge.within),
                    "repeat_at_most_every": format_duration(route.group_interval),
                },
                "leaders": [
                    {"id": leader.id, "name": leader.name, "locale": leader.locale}
                    for leader in rules.leaders_of(route.receiver)
                ],
                "group": dict(rules.group_labels(route, report)),
            }
        )
    return {
        "rules_version": rules.version,
        "region": {
            "id": report.region,
            "path": list(rules.region_path(report.region)),
            "name": rules.region_name(report.region, "en"),
        },
        "routes": routes,
    }


def explain_text(result: dict[str, Any]) -> list[str]:
    region = result["region"]
    lines = [f"region: {region['id']} ({region['name']}), path {' > '.join(region['path']) or '-'}"]
    for r in result["routes"]:
        leaders = ", ".join(f"{x['name']} ({x['id']}, {x['locale']})" for x in r["leaders"])
        group = ", ".join(f"{k}={v}" for k, v in r["group"].items()) or "one group"
        how = "immediate" if r["immediate"] else f"grouped by {group}"
        surge = r.get("surge")
        if surge is not None:
            how = (
                f"counts toward a surge of >= {surge['incidents_at_least']} incidents within "
                f"{surge['within']}, per {group}; told again at most every "
                f"{surge['repeat_at_most_every']}"
            )
        lines.append(
            f"route {' > '.join(r['path'])}: {r['receiver_name']} ({r['receiver']}) [{how}]"
        )
        lines.append(f"  leaders: {leaders or 'none'}")
    return lines
