"""routes.yaml's schema: the route tree and the inhibit rules, every mistake collected.

A route inherits its receiver, grouping, timings, `immediate` and `payload` from its parent;
each is read and checked by a function of its own below (`_route` puts them together).
Messages say file:line:column, what is wrong and the fix, as in `schema.py`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from dispatcher.model import KINDS, STATUSES
from dispatcher.route import COUNTS, Inhibition, Matchers, Route, Threshold
from dispatcher.rules.errors import Loc, suggest
from dispatcher.rules.schema import ID, THRESHOLD, Checker
from dispatcher.rules.surge_schema import check_surge_route, parse_surge
from dispatcher.rules.yamlmarks import Y

GROUP_BY = re.compile(r"^(region|region:\d+|kind|source)$")
ROUTE_KEYS = (
    "name",
    "match",
    "receiver",
    "group_by",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "ttl",
    "close_after",
    "continue",
    "immediate",
    "payload",
    "surge",
    "routes",
)
SURGE_GROUP_WAIT = timedelta(0)  # a surge route's own default: pushed at the next tick
MATCH_KEYS = ("regions", "kinds", "statuses", "sources", *COUNTS, "not")
NOT_KEYS = ("regions", "kinds", "statuses", "sources")
DEFAULT_TIMINGS = {
    "group_wait": timedelta(seconds=30),
    "group_interval": timedelta(minutes=5),
    "repeat_interval": timedelta(hours=4),
    # How long a push may wait for a phone that is offline before it is dropped: a digest
    # arriving hours late would mislead.
    "ttl": timedelta(hours=1),
    # A group with no report for this long closes with a summary; the next report opens a
    # new one.
    "close_after": timedelta(hours=1),
}
MAX_TTL = timedelta(days=28)  # FCM's limit


@dataclass(frozen=True, slots=True)
class Receivers:
    """Whom a route may name as its receiver: a team, or a single leader."""

    teams: frozenset[str]
    leaders: frozenset[str]


@dataclass
class _Known:
    """What a route's references are checked against, and the route names seen so far."""

    regions: set[str] | None  # None: regions.yaml could not be read, so not checked
    receivers: Receivers | None  # None: teams.yaml could not be read
    names: dict[str, Loc]


@dataclass
class _Inherited:
    receiver: str | None
    group_by: tuple[str, ...]
    timings: dict[str, timedelta] = field(default_factory=dict)
    immediate: bool = False
    payload: str = "full"


def parse_routes(
    doc: Y | None,
    file: str,
    c: Checker,
    *,
    regions: Iterable[str] | None,
    receivers: Receivers | None,
    inhibitions: list[Inhibition] | None = None,
) -> Route | None:
    """The route tree. A receiver is a team id or a single leader's id. `regions` or
    `receivers` is None when its file could not be read: then references to it are not
    checked, rather than each reported as unknown."""
    if doc is None or not c.mapping(doc, "routes.yaml", ("route", "inhibit"), ("route",)):
        return None
    root = doc.value["route"]
    if root.is_map():
        for key in ("match", "continue", "surge"):
            if key in root.value:
                c.p.error(
                    root.key_locs[key],
                    f"the top route takes every report; '{key}' belongs on a child route",
                )
    known = _Known(None if regions is None else set(regions), receivers, {})
    tree = _route(root, "root", _Inherited(None, (), dict(DEFAULT_TIMINGS)), c, known, is_root=True)
    if "inhibit" in doc.value:
        found = _inhibitions(doc.value["inhibit"], c, known.names)
        if inhibitions is not None:
            inhibitions.extend(found)
    return tree


INHIBIT_KEYS = ("name", "source", "target", "for")


def _inhibitions(y: Y, c: Checker, names: dict[str, Loc]) -> list[Inhibition]:
    """`inhibit:` rules; routes are named by their `name`."""
    if not y.is_list():
        c.p.error(y.loc, "inhibit must be a list of rules, each starting with '- source: ...'")
        return []
    out = []
    for i, item in enumerate(y.value):
        if not c.mapping(item, "an inhibit rule", INHIBIT_KEYS, ("source", "target", "for")):
            continue
        v = item.value
        sides = []
        for side in ("source", "target"):
            routes: list[str] = []
            if c.mapping(v[side], f"inhibit {side}", ("routes",), ("routes",)):
                for route, loc in c.strings(v[side].value["routes"], f"{side}.routes"):
                    if route not in names:
                        hint = suggest(route, names) or "; routes are named by their 'name'"
                        c.p.error(loc, f"unknown route '{route}'{hint}")
                    routes.append(route)
            sides.append(frozenset(routes))
        for_ = c.duration(v["for"], "for")
        name = c.string(v.get("name"), "inhibit name") or f"inhibit.{i}"
        if for_ is not None and all(sides):
            out.append(Inhibition(name, sides[0], sides[1], for_))
    return out


def _route(
    y: Y,
    path: str,
    parent: _Inherited,
    c: Checker,
    known: _Known,
    *,
    is_root: bool = False,
) -> Route | None:
    required = ("receiver",) if is_root else ()
    if not c.mapping(y, "a route", ROUTE_KEYS, required):
        return None
    v = y.value
    name = _name(v, c, known.names)
    receiver = _receiver(v, parent, c, known.receivers)
    group_by = _group_by(v, parent, c)
    timings = _timings(v, parent, c)
    matchers = _matchers(v, c, known.regions)
    cont = c.boolean(v.get("continue"), "continue", False)
    immediate = c.boolean(v.get("immediate"), "immediate", parent.immediate)
    is_surge = "surge" in v and not is_root  # the top route's is refused in parse_routes
    surge = parse_surge(v["surge"], c) if is_surge else None
    if is_surge:
        check_surge_route(v, matchers, c)
        immediate = False
        # Its own group_wait, not its parent's digest wait: a surge is told at once.
        if "group_wait" not in v:
            timings["group_wait"] = SURGE_GROUP_WAIT
    if immediate and "immediate" in v:
        for key in ("group_wait", "group_interval"):
            if key in v:
                c.p.warning(
                    v[key].loc,
                    f"{key} has no effect on an immediate route: each report is pushed at once",
                )
    here = _Inherited(receiver, group_by, timings, immediate, _payload(v, parent, c))
    children = [] if is_surge else _children(v, path, here, c, known)
    if receiver is None or (is_surge and surge is None):
        return None  # (a surge route with a bad surge: left out, so as not to shadow others)
    timings = here.timings
    return Route(
        id=name or path,
        receiver=receiver,
        group_by=here.group_by,
        group_wait=timings["group_wait"],
        group_interval=timings["group_interval"],
        repeat_interval=timings["repeat_interval"],
        ttl=timings["ttl"],
        close_after=timings["close_after"],
        matchers=matchers,
        continue_=cont,
        children=tuple(children),
        where=y.loc,
        immediate=immediate,
        payload=here.payload,
        surge=surge,
    )


def _name(v: dict[str, Y], c: Checker, names: dict[str, Loc]) -> str | None:
    """The route's `name`, checked to be unique in the tree."""
    name = c.string(v.get("name"), "route name", pattern=ID)
    if name is not None:
        if name in names:
            c.p.error(
                v["name"].loc, f"duplicate route name '{name}' (first at line {names[name].line})"
            )
        names[name] = v["name"].loc
    return name


def _receiver(
    v: dict[str, Y], parent: _Inherited, c: Checker, receivers: Receivers | None
) -> str | None:
    """Its own receiver (a team or one leader), checked, or its parent's."""
    receiver = c.string(v.get("receiver"), "receiver", pattern=ID) or parent.receiver
    if "receiver" not in v or receivers is None or receiver is None:
        return receiver
    if receiver not in receivers.teams and receiver not in receivers.leaders:
        names = sorted(receivers.teams | receivers.leaders)
        close = difflib.get_close_matches(receiver, names, n=1, cutoff=0.6)
        what = "team or leader" if not close or close[0] in receivers.leaders else "team"
        hint = f"; did you mean '{close[0]}'?" if close else ""
        c.p.error(v["receiver"].loc, f"unknown {what} '{receiver}'{hint}")
    return receiver


def _group_by(v: dict[str, Y], parent: _Inherited, c: Checker) -> tuple[str, ...]:
    if "group_by" not in v:
        return parent.group_by
    labels = c.strings(v["group_by"], "group_by")
    for label, loc in labels:
        if not GROUP_BY.match(label):
            hint = suggest(label, ("region", "kind", "source"))
            c.p.error(
                loc,
                f"cannot group by '{label}'{hint}"
                + (
                    ""
                    if hint
                    else "; use region, region:N (N = depth in the region tree), kind or source"
                ),
            )
    return tuple(label for label, _ in labels if GROUP_BY.match(label))


def _timings(v: dict[str, Y], parent: _Inherited, c: Checker) -> dict[str, timedelta]:
    timings = dict(parent.timings)
    for key in DEFAULT_TIMINGS:
        value = c.duration(v.get(key), key)
        if value is not None and key == "ttl" and value > MAX_TTL:
            c.p.error(v[key].loc, "ttl can be at most 28 days (FCM's limit)")
        elif value is not None:
            timings[key] = value
    return timings


def _matchers(v: dict[str, Y], c: Checker, regions: set[str] | None) -> Matchers:
    if "match" not in v or not c.mapping(v["match"], "match", MATCH_KEYS):
        return Matchers()
    m = v["match"].value
    regions_, kinds_, statuses_, sources_ = _sets(m, "match", c, regions)
    thresholds = []
    for count_field in COUNTS:
        if count_field in m:
            t = _threshold(m[count_field], count_field, c)
            if t is not None:
                thresholds.append(t)
    negated: tuple[frozenset[str], ...] = (frozenset(),) * 4
    if "not" in m and c.mapping(m["not"], "match.not", NOT_KEYS):
        negated = _sets(m["not"].value, "match.not", c, regions)
    return Matchers(regions_, kinds_, statuses_, sources_, tuple(thresholds), *negated)


def _payload(v: dict[str, Y], parent: _Inherited, c: Checker) -> str:
    if "payload" not in v:
        return parent.payload
    given = c.string(v["payload"], "payload")
    if given in ("full", "minimal"):
        return given
    if given is not None:
        c.p.error(
            v["payload"].loc,
            f"payload '{given}' is not known{suggest(given, ('full', 'minimal'))}; use full "
            "(the alert on the phone) or minimal (a neutral notice; the app fetches the text)",
        )
    return parent.payload


def _children(
    v: dict[str, Y], path: str, here: _Inherited, c: Checker, known: _Known
) -> list[Route]:
    children: list[Route] = []
    if "routes" not in v:
        return children
    if not v["routes"].is_list():
        c.p.error(v["routes"].loc, "routes must be a list of routes, each starting with '- '")
        return children
    for i, child_y in enumerate(v["routes"].value):
        child = _route(child_y, f"{path}.{i}", here, c, known)
        if child is not None:
            children.append(child)
    _check_shadowed(children, c)
    return children


def _sets(
    m: dict[str, Y], where: str, c: Checker, regions: set[str] | None
) -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """regions, kinds, statuses and sources of a match (or match.not) block, checked."""
    wanted_regions = c.strings(m.get("regions"), f"{where}.regions")
    for rid, loc in wanted_regions:
        if regions is not None and rid not in regions:
            c.p.error(loc, f"unknown region '{rid}'{suggest(rid, regions)}")
    kinds = c.strings(m.get("kinds"), f"{where}.kinds")
    for kind, loc in kinds:
        if kind not in KINDS:
            c.p.error(
                loc,
                f"unknown kind '{kind}'{suggest(kind, KINDS)}"
                + ("" if suggest(kind, KINDS) else f"; kinds are {', '.join(KINDS)}"),
            )
    statuses = c.strings(m.get("statuses"), f"{where}.statuses")
    for status, loc in statuses:
        if status not in STATUSES:
            hint = suggest(status, STATUSES) or f"; use {', '.join(STATUSES)}"
            c.p.error(loc, f"unknown status '{status}'{hint}")
    sources = c.strings(m.get("sources"), f"{where}.sources")
    return (
        frozenset(r for r, _ in wanted_regions),
        frozenset(k for k, _ in kinds),
        frozenset(s for s, _ in statuses),
        frozenset(s for s, _ in sources),
    )


def _threshold(y: Y, name: str, c: Checker) -> Threshold | None:
    """`killed: 5` (at least 5) or `killed: ">= 5"`, `"> 0"`, `"< 3"`, `"== 0"`, `"!= 0"`."""
    raw = y.value
    text = str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else None
    found = THRESHOLD.match(text) if text is not None else None
    if found is None:
        c.p.error(
            y.loc,
            f'{name} must be a count like 5 (at least 5) or a comparison like ">= 5" '
            "(quote it in YAML)",
        )
        return None
    return Threshold(name, found.group(1) or ">=", int(found.group(2)))


def _check_shadowed(children: list[Route], c: Checker) -> None:
    """Warn about a route that no report can reach: an earlier sibling without `continue`
    takes everything it would. Only siblings with plain region and kind matchers are judged
    (elsewhere it is not certain), which also keeps a large tree cheap to check."""
    blocking: list[Route] = []
    for later in children:
        if not later.matchers.only_regions_and_kinds():
            continue
        earlier = next((e for e in blocking if _covers(e.matchers, later.matchers)), None)
        if earlier is not None:
            c.p.warning(
                Loc(*later.where),
                f"route '{later.id}' can never match: the earlier route '{earlier.id}' "
                f"(line {earlier.where[1]}) takes every report it would; move it up or set "
                "'continue: true' on the earlier one",
            )
        if not later.continue_ and later.surge is None:
            blocking.append(later)


def _covers(m: Matchers, n: Matchers) -> bool:
    """Every report `n` matches, `m` matches too (for region and kind matchers)."""
    regions = not m.regions or bool(n.regions and n.regions <= m.regions)
    return regions and (not m.kinds or bool(n.kinds and n.kinds <= m.kinds))
