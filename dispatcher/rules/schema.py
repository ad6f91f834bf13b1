"""The rules' schema: marked YAML in, domain values out, every mistake collected.

Operators are not programmers, so each check says where (file:line:column), what is wrong,
and how to fix it, with a close match for misspelt keys, kinds, regions and teams.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from dispatcher.model import KINDS, LOCALES, STATUSES, Leader, Region, Team
from dispatcher.route import COUNTS, Inhibition, Matchers, Route, Threshold
from dispatcher.rules.durations import parse_duration
from dispatcher.rules.errors import Loc, Problems, suggest
from dispatcher.rules.yamlmarks import Y
from dispatcher.surge import SurgeRule

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
GROUP_BY = re.compile(r"^(region|region:\d+|kind|source)$")

REGION_KEYS = (
    "id",
    "name",
    "name_ar",
    "parent",
    "aliases",
    "approximate",
    "polygon",
    "boundary",
)
TEAM_KEYS = ("id", "name", "leaders", "escalate_after", "escalate_to", "fallback")
LEADER_KEYS = ("id", "name", "locale", "fallback")
CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
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
SURGE_KEYS = ("incidents", "within")
SURGE_GROUP_WAIT = timedelta(0)  # a surge route's own default: pushed at the next tick
MATCH_KEYS = ("regions", "kinds", "statuses", "sources", *COUNTS, "not")
NOT_KEYS = ("regions", "kinds", "statuses", "sources")
LEADER_MARK = "leader:"  # marks leader ids among the receivers parse_routes is given
THRESHOLD = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+)\s*$")
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


class Checker:
    """Small typed readers over `Y` nodes that report instead of raising."""

    def __init__(self, problems: Problems) -> None:
        self.p = problems

    def mapping(self, y: Y, what: str, keys: Iterable[str], required: Iterable[str] = ()) -> bool:
        if not y.is_map():
            self.p.error(y.loc, f"{what} must be a mapping of keys to values")
            return False
        allowed = tuple(keys)
        for key in y.value:
            if key not in allowed:
                self.p.error(
                    y.key_locs[key],
                    f"unknown key '{key}' in {what}{suggest(key, allowed)}"
                    + ("" if suggest(key, allowed) else f"; allowed: {', '.join(allowed)}"),
                )
        ok = True
        for key in required:
            if key not in y.value:
                self.p.error(y.loc, f"{what} is missing the required key '{key}'")
                ok = False
        return ok

    def string(
        self, y: Y | None, what: str, *, pattern: re.Pattern[str] | None = None
    ) -> str | None:
        if y is None:
            return None
        if not isinstance(y.value, str) or not y.value.strip():
            self.p.error(y.loc, f"{what} must be text, not {_describe(y.value)}")
            return None
        if pattern is not None and not pattern.match(y.value):
            self.p.error(
                y.loc, f"{what} '{y.value}' may hold only letters, digits, '-', '_' and '.'"
            )
            return None
        return str(y.value)

    def strings(self, y: Y | None, what: str) -> list[tuple[str, Loc]]:
        if y is None:
            return []
        items = y.value if y.is_list() else [y] if isinstance(y.value, str) else None
        if items is None:
            self.p.error(y.loc, f"{what} must be a list, like [a, b]")
            return []
        out = []
        for item in items:
            text = self.string(item, f"each of {what}")
            if text is not None:
                out.append((text, item.loc))
        return out

    def boolean(self, y: Y | None, what: str, default: bool) -> bool:
        if y is None:
            return default
        if not isinstance(y.value, bool):
            self.p.error(y.loc, f"{what} must be true or false, not {_describe(y.value)}")
            return default
        return bool(y.value)

    def duration(self, y: Y | None, what: str) -> timedelta | None:
        if y is None:
            return None
        if not isinstance(y.value, str):
            self.p.error(y.loc, f"{what} must be a duration like 30s, 2m or 1h30m")
            return None
        try:
            value = parse_duration(y.value)
        except ValueError as exc:
            self.p.error(y.loc, f"{what}: {exc}")
            return None
        if value <= timedelta(0) and what != "group_wait":
            self.p.error(y.loc, f"{what} must be longer than zero")
            return None
        return value


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"'{value}'"


# Arabic spellings vary in the hamza on alef, in tatweel and in short-vowel marks.
_ARABIC_FOLD = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ـ": None})
_HARAKAT = re.compile("[\u064b-\u0652\u0670]")


def name_key(name: str) -> str:
    """A region name reduced so that spellings a reporter may use compare equal."""
    folded = _HARAKAT.sub("", name.translate(_ARABIC_FOLD))
    return " ".join(folded.casefold().replace("'", "").replace("’", "").split())


def region_names(regions: Iterable[Region]) -> dict[str, tuple[str, ...]]:
    """Every name, Arabic name and alias (by `name_key`) and the regions that carry it."""
    out: dict[str, list[str]] = {}
    for region in regions:
        for name in {name_key(n) for n in (region.name, region.name_ar, *region.aliases)}:
            out.setdefault(name, []).append(region.id)
    return {name: tuple(ids) for name, ids in out.items()}


@dataclass
class RegionSpec:
    region: Region
    loc: Loc
    parent_loc: Loc | None
    polygon: BaseGeometry | None
    approximate: bool
    boundary: tuple[str, Loc] | None = None  # a GeoJSON file holding the outline


def parse_regions(doc: Y | None, file: str, c: Checker) -> dict[str, RegionSpec]:
    out: dict[str, RegionSpec] = {}
    if doc is None or not c.mapping(doc, "regions.yaml", ("regions",), ("regions",)):
        return out
    items = doc.value["regions"]
    if not items.is_list():
        c.p.error(items.loc, "regions must be a list of regions, each starting with '- id: ...'")
        return out
    for y in items.value:
        if not c.mapping(y, "a region", REGION_KEYS, ("id", "name", "name_ar")):
            continue
        v = y.value
        rid = c.string(v["id"], "region id", pattern=ID)
        name = c.string(v["name"], "name")
        name_ar = c.string(v["name_ar"], "name_ar")
        parent = c.string(v.get("parent"), "parent", pattern=ID)
        aliases = tuple(a for a, _ in c.strings(v.get("aliases"), "aliases"))
        approximate = c.boolean(v.get("approximate"), "approximate", False)
        polygon = _polygon(v.get("polygon"), c) if "polygon" in v else None
        ref = c.string(v.get("boundary"), "boundary")
        boundary = (ref, v["boundary"].loc) if ref is not None else None
        if "polygon" in v and "boundary" in v:
            c.p.error(
                y.key_locs["boundary"],
                "a region has a polygon or a boundary file, not both; remove one",
            )
        if rid is None or name is None or name_ar is None:
            continue
        if rid in out:
            c.p.error(
                v["id"].loc, f"duplicate region id '{rid}' (first at line {out[rid].loc.line})"
            )
            continue
        parent_loc = v["parent"].loc if "parent" in v else None
        region = Region(rid, name, name_ar, parent, aliases)
        out[rid] = RegionSpec(region, v["id"].loc, parent_loc, polygon, approximate, boundary)
    _check_parents(out, c)
    _check_names(out, c)
    return out


def _check_names(regions: dict[str, RegionSpec], c: Checker) -> None:
    """Warn where one name means two regions at the same depth: a report naming it cannot
    be placed by name and is refused (ids and coordinates still work)."""
    depth: dict[str, int] = {}

    def depth_of(rid: str) -> int:
        if rid not in depth:
            parent = regions[rid].region.parent
            depth[rid] = 0  # guards against cycles, which _check_parents reports
            depth[rid] = 1 + depth_of(parent) if parent in regions else 0
        return depth[rid]

    for name, ids in region_names(s.region for s in regions.values()).items():
        by_depth: dict[int, list[str]] = {}
        for rid in ids:
            by_depth.setdefault(depth_of(rid), []).append(rid)
        top = by_depth[min(by_depth)]
        if len(top) > 1:
            c.p.warning(
                regions[top[1]].loc,
                f"the name '{name}' belongs to regions {', '.join(top)} at the same level; "
                "reports giving that name will be refused as ambiguous: make it an alias of "
                "one of them only",
            )


def _polygon(y: Y, c: Checker) -> BaseGeometry | None:
    if not y.is_list() or len(y.value) < 3:
        c.p.error(y.loc, "polygon must be a list of at least 3 [lon, lat] points")
        return None
    points = []
    for pt in y.value:
        raw = pt.plain()
        if (
            not isinstance(raw, list)
            or len(raw) != 2
            or not all(isinstance(n, int | float) and not isinstance(n, bool) for n in raw)
        ):
            c.p.error(pt.loc, "each polygon point must be [lon, lat], two numbers")
            return None
        lon, lat = float(raw[0]), float(raw[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            c.p.error(pt.loc, f"point [{lon}, {lat}] is off the map: [lon, lat], lon first")
            return None
        points.append((lon, lat))
    poly = shapely.Polygon(points)
    if not poly.is_valid:
        c.p.error(
            y.loc,
            f"polygon is not valid ({explain_validity(poly)}); check the order of the points: "
            "the outline must not cross itself",
        )
        return None
    return poly


def _check_parents(regions: dict[str, RegionSpec], c: Checker) -> None:
    for spec in regions.values():
        parent = spec.region.parent
        if parent is not None and parent not in regions and spec.parent_loc is not None:
            c.p.error(
                spec.parent_loc, f"unknown parent region '{parent}'{suggest(parent, regions)}"
            )
    reported: set[str] = set()
    for start in regions:
        seen: list[str] = []
        node: str | None = start
        while node is not None and node in regions and node not in seen:
            seen.append(node)
            node = regions[node].region.parent
        if node is not None and node in seen and node not in reported:
            cycle = seen[seen.index(node) :]
            reported.update(cycle)
            spec = regions[node]
            c.p.error(
                spec.parent_loc or spec.loc,
                "regions form a cycle: " + " -> ".join([*cycle, node]) + "; a region cannot be "
                "inside itself",
            )


def parse_teams(doc: Y | None, file: str, c: Checker) -> tuple[dict[str, Team], dict[str, Loc]]:
    teams: dict[str, Team] = {}
    locs: dict[str, Loc] = {}
    leader_locs: dict[str, Loc] = {}
    escalations: dict[str, tuple[str, Loc]] = {}
    if doc is None or not c.mapping(doc, "teams.yaml", ("teams",), ("teams",)):
        return teams, locs
    items = doc.value["teams"]
    if not items.is_list():
        c.p.error(items.loc, "teams must be a list of teams, each starting with '- id: ...'")
        return teams, locs
    for y in items.value:
        if not c.mapping(y, "a team", TEAM_KEYS, ("id", "name", "leaders")):
            continue
        v = y.value
        tid = c.string(v["id"], "team id", pattern=ID)
        name = c.string(v["name"], "team name")
        team_fallback = c.string(v.get("fallback"), "fallback", pattern=CHANNEL)
        leaders: list[Leader] = []
        if not v["leaders"].is_list():
            c.p.error(v["leaders"].loc, "leaders must be a list of {id, name, locale}")
        else:
            for ly in v["leaders"].value:
                if not c.mapping(ly, "a leader", LEADER_KEYS, ("id", "name")):
                    continue
                lid = c.string(ly.value["id"], "leader id", pattern=ID)
                lname = c.string(ly.value["name"], "leader name")
                locale = c.string(ly.value.get("locale"), "locale") or "ar"
                if locale not in LOCALES:
                    c.p.error(
                        ly.value["locale"].loc,
                        f"unknown locale '{locale}'; use one of {', '.join(LOCALES)}",
                    )
                if lid is None or lname is None or tid is None:
                    continue
                if lid in leader_locs:
                    c.p.error(
                        ly.value["id"].loc,
                        f"duplicate leader id '{lid}' (first at line {leader_locs[lid].line}); "
                        "a leader belongs to one team",
                    )
                    continue
                leader_locs[lid] = ly.value["id"].loc
                own = c.string(ly.value.get("fallback"), "fallback", pattern=CHANNEL)
                leaders.append(Leader(lid, lname, locale, tid, own or team_fallback))
        escalate_after = c.duration(v.get("escalate_after"), "escalate_after")
        escalate_to = c.string(v.get("escalate_to"), "escalate_to", pattern=ID)
        if (escalate_after is None) != (escalate_to is None) and (
            "escalate_after" in v or "escalate_to" in v
        ):
            c.p.error(y.loc, "a team that escalates needs both escalate_after and escalate_to")
        if tid is None or name is None:
            continue
        if tid in teams:
            c.p.error(v["id"].loc, f"duplicate team id '{tid}' (first at line {locs[tid].line})")
            continue
        teams[tid] = Team(tid, name, tuple(leaders), escalate_after, escalate_to, team_fallback)
        locs[tid] = v["id"].loc
        if escalate_to is not None:
            escalations[tid] = (escalate_to, v["escalate_to"].loc)
    for tid, (target, loc) in escalations.items():
        if target not in teams:
            c.p.error(loc, f"unknown team '{target}'{suggest(target, teams)}")
        elif target == tid:
            c.p.error(loc, f"team '{tid}' cannot escalate to itself")
    for tid, loc in locs.items():
        if tid in leader_locs:
            c.p.error(
                loc,
                f"team id '{tid}' is also a leader's id (line {leader_locs[tid].line}); a route's "
                "receiver names either, so give one of them another id",
            )
    return teams, locs


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
    teams: Iterable[str] | None,
    inhibitions: list[Inhibition] | None = None,
) -> Route | None:
    """The route tree. A receiver is a team id or a single leader's id. `regions` or `teams`
    (team ids, and leader ids marked with LEADER_MARK) is None when its file could not be
    read: then references to it are not checked, rather than each reported as unknown."""
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
    names: dict[str, Loc] = {}
    inherited = _Inherited(None, (), dict(DEFAULT_TIMINGS))
    tree = _route(
        root,
        "root",
        inherited,
        c,
        None if regions is None else set(regions),
        None if teams is None else set(teams),
        names,
        is_root=True,
    )
    if "inhibit" in doc.value:
        found = _inhibitions(doc.value["inhibit"], c, names)
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
    regions: set[str] | None,
    teams: set[str] | None,
    names: dict[str, Loc],
    *,
    is_root: bool = False,
) -> Route | None:
    required = ("receiver",) if is_root else ()
    if not c.mapping(y, "a route", ROUTE_KEYS, required):
        return None
    v = y.value
    name = c.string(v.get("name"), "route name", pattern=ID)
    if name is not None:
        if name in names:
            c.p.error(
                v["name"].loc, f"duplicate route name '{name}' (first at line {names[name].line})"
            )
        names[name] = v["name"].loc
    receiver = c.string(v.get("receiver"), "receiver", pattern=ID) or parent.receiver
    known = teams is not None and (receiver in teams or f"{LEADER_MARK}{receiver}" in teams)
    if "receiver" in v and teams is not None and receiver is not None and not known:
        is_leader = {t.removeprefix(LEADER_MARK): t.startswith(LEADER_MARK) for t in teams}
        close = difflib.get_close_matches(receiver, list(is_leader), n=1, cutoff=0.6)
        what = "team or leader" if not close or is_leader[close[0]] else "team"
        hint = f"; did you mean '{close[0]}'?" if close else ""
        c.p.error(v["receiver"].loc, f"unknown {what} '{receiver}'{hint}")
    group_by = parent.group_by
    if "group_by" in v:
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
        group_by = tuple(label for label, _ in labels if GROUP_BY.match(label))
    timings = dict(parent.timings)
    for key in DEFAULT_TIMINGS:
        value = c.duration(v.get(key), key)
        if value is not None and key == "ttl" and value > MAX_TTL:
            c.p.error(v[key].loc, "ttl can be at most 28 days (FCM's limit)")
        elif value is not None:
            timings[key] = value
    matchers = Matchers()
    if "match" in v and c.mapping(v["match"], "match", MATCH_KEYS):
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
        matchers = Matchers(regions_, kinds_, statuses_, sources_, tuple(thresholds), *negated)
    cont = c.boolean(v.get("continue"), "continue", False)
    immediate = c.boolean(v.get("immediate"), "immediate", parent.immediate)
    is_surge = "surge" in v and not is_root  # the top route's is refused in parse_routes
    surge = _surge(v["surge"], c) if is_surge else None
    if is_surge:
        _check_surge_route(v, c)
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
    payload = parent.payload
    if "payload" in v:
        given = c.string(v["payload"], "payload")
        if given in ("full", "minimal"):
            payload = given
        elif given is not None:
            c.p.error(
                v["payload"].loc,
                f"payload '{given}' is not known{suggest(given, ('full', 'minimal'))}; use full "
                "(the alert on the phone) or minimal (a neutral notice; the app fetches the text)",
            )
    if is_surge and "match" in v:
        leaves_out = matchers.statuses and "retracted" not in matchers.statuses
        if leaves_out or "retracted" in matchers.not_statuses:
            c.p.error(
                v["match"].loc,
                "a surge route must match retracted reports too, or a retracted incident "
                "keeps counting; remove the status matcher that leaves them out",
            )
    here = _Inherited(receiver, group_by, timings, immediate, payload)
    children: list[Route] = []
    if "routes" in v and not is_surge:
        if not v["routes"].is_list():
            c.p.error(v["routes"].loc, "routes must be a list of routes, each starting with '- '")
        else:
            for i, child_y in enumerate(v["routes"].value):
                child = _route(child_y, f"{path}.{i}", here, c, regions, teams, names)
                if child is not None:
                    children.append(child)
            _check_shadowed(children, c)
    if receiver is None or (is_surge and surge is None):
        return None  # (a surge route with a bad surge: left out, so as not to shadow others)
    return Route(
        id=name or path,
        receiver=receiver,
        group_by=group_by,
        group_wait=timings["group_wait"],
        group_interval=timings["group_interval"],
        repeat_interval=timings["repeat_interval"],
        ttl=timings["ttl"],
        close_after=timings["close_after"],
        matchers=matchers,
        continue_=cont,
        children=tuple(children),
        where=str(y.loc),
        immediate=immediate,
        payload=payload,
        surge=surge,
    )


def _surge(y: Y, c: Checker) -> SurgeRule | None:
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


def _check_surge_route(v: dict[str, Y], c: Checker) -> None:
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
            file, line, col = later.where.rsplit(":", 2)
            c.p.warning(
                Loc(file, int(line), int(col)),
                f"route '{later.id}' can never match: the earlier route '{earlier.id}' "
                "(line " + earlier.where.rsplit(":", 2)[1] + ") takes every report it "
                "would; move it up or set 'continue: true' on the earlier one",
            )
        if not later.continue_ and later.surge is None:
            blocking.append(later)


def _covers(m: Matchers, n: Matchers) -> bool:
    """Every report `n` matches, `m` matches too (for region and kind matchers)."""
    regions = not m.regions or bool(n.regions and n.regions <= m.regions)
    return regions and (not m.kinds or bool(n.kinds and n.kinds <= m.kinds))
