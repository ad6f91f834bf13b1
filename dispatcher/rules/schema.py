"""The rules' schema: marked YAML in, domain values out, every mistake collected.

`Checker` reads typed values and collects problems; this module reads regions.yaml and
teams.yaml with it; routes.yaml is `rules/routes.py`, templates.yaml `rules/templates.py`.

Operators are not programmers, so each check says where (file:line:column), what is wrong,
and how to fix it, with a close match for misspelt keys, kinds, regions and teams.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from dispatcher.model import LOCALES, Leader, Region, Team
from dispatcher.rules.durations import parse_duration
from dispatcher.rules.errors import Loc, Problems, suggest
from dispatcher.rules.names import region_names
from dispatcher.rules.yamlmarks import Y

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
THRESHOLD = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+)\s*$")  # a count or a comparison

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
