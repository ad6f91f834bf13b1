"""A surge route in routes.yaml: its `surge:` block, and what a surge route cannot hold.

Part of routes.yaml's schema (`rules/routes.py` calls these for a route with `surge:`); the
decision a surge rule drives is `dispatcher/surge.py`.
"""

from __future__ import annotations

from dispatcher.route import Matchers
from dispatcher.rules.schema import THRESHOLD, Checker
from dispatcher.rules.yamlmarks import Y
from dispatcher.surge import SurgeRule

SURGE_KEYS = ("incidents", "within")


def parse_surge(y: Y, c: Checker) -> SurgeRule | None:
    """`surge: {incidents: ">= 8", within: 30m}`: 8 or more live incidents in 30 minutes."""
    if not y.is_map():
        c.p.error(y.loc, 'surge must be a mapping like {incidents: ">= 8", within: 30m}')
        return None
    if not c.mapping(y, "surge", SURGE_KEYS):
        return None
    v = y.value
    missing = {
        "incidents": "surge needs 'incidents', the threshold, like incidents: \">= 8\"",
        "within": "surge needs 'within', the window incidents are counted in, like within: 30m",
    }
    for key, message in missing.items():
        if key not in v:
            c.p.error(y.loc, message)
    at_least = _surge_threshold(v["incidents"], c) if "incidents" in v else None
    within = c.duration(v.get("within"), "surge.within")
    if at_least is None or within is None:
        return None
    return SurgeRule(at_least, within)


def _surge_threshold(y: Y, c: Checker) -> int | None:
    """`8` (8 or more, as casualty matchers read a bare count), `">= 8"` or `"> 7"`."""
    raw = y.value
    text = str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else None
    found = THRESHOLD.match(text) if text is not None else None
    if found is None:
        c.p.error(y.loc, 'surge.incidents must be a threshold like ">= 8" (quote it in YAML)')
        return None
    op, value = found.group(1) or ">=", int(found.group(2))
    if op not in (">=", ">"):
        c.p.error(
            y.loc,
            f"surge.incidents '{text}' cannot open a surge: a surge is a rate that rises to a "
            'threshold; write it like ">= 8"',
        )
        return None
    at_least = value + 1 if op == ">" else value
    if at_least < 2:
        c.p.error(
            y.loc,
            f"surge.incidents '{text}' makes every incident a surge; use a threshold of 2 or "
            "more, or a route without surge",
        )
        return None
    return at_least


def check_surge_route(v: dict[str, Y], matchers: Matchers, c: Checker) -> None:
    """What a surge route cannot hold, each with the fix."""
    if "routes" in v:
        c.p.error(
            v["routes"].loc,
            "a surge route counts incidents and has no routes below it; put these routes beside it",
        )
    if "continue" in v and v["continue"].value is False:
        c.p.error(
            v["continue"].loc,
            "a surge route always lets reports go on to the routes after it; remove "
            "'continue: false'",
        )
    if "immediate" in v and v["immediate"].value is True:
        c.p.error(
            v["immediate"].loc,
            "a surge route pushes when the rate is reached, not each report; remove "
            "'immediate: true'",
        )
    for key in ("repeat_interval", "close_after"):
        if key in v:
            c.p.warning(
                v[key].loc,
                f"{key} has no effect on a surge route: it repeats at most every "
                "group_interval while the rate holds, and closes when its window is empty",
            )
    if "match" in v:
        leaves_out = matchers.statuses and "retracted" not in matchers.statuses
        if leaves_out or "retracted" in matchers.not_statuses:
            c.p.error(
                v["match"].loc,
                "a surge route must match retracted reports too, or a retracted incident "
                "keeps counting; remove the status matcher that leaves them out",
            )
