"""Loading a rules folder into a `RuleSet`: the regions, teams and route tree in force.

`load_rules` reads the three files, checks everything, and either returns a complete rule
set or raises `RulesInvalid` with every error found. A rule set is immutable: a reload
builds a new one and swaps it in whole.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from dispatcher.counting import DEFAULT_TIER
from dispatcher.locate import RegionIndex
from dispatcher.model import UNASSIGNED, Leader, Region, Report, Team
from dispatcher.route import Inhibition, Route, group_labels, match, match_surges
from dispatcher.rules.boundaries import read_outlines
from dispatcher.rules.errors import Loc, Problems, RuleError, RulesInvalid
from dispatcher.rules.names import name_key, region_names
from dispatcher.rules.routes import Receivers, parse_routes
from dispatcher.rules.schema import Checker, parse_regions, parse_teams
from dispatcher.rules.sources import parse_sources
from dispatcher.rules.templates import parse_templates
from dispatcher.rules.yamlmarks import Y, load_marked

FILES = ("regions.yaml", "teams.yaml", "routes.yaml")
OPTIONAL_FILES = ("templates.yaml", "sources.yaml")
UNASSIGNED_NAMES = {"en": "Unassigned area", "ar": "منطقة غير محددة"}


@dataclass(frozen=True)
class RuleSet:
    regions: dict[str, Region]
    teams: dict[str, Team]
    root: Route
    files: tuple[Path, ...]
    version: str  # the first 12 hex digits of sha256
    index: RegionIndex
    sha256: str = ""  # of the three files' names and contents
    approximate: frozenset[str] = frozenset()
    warnings: tuple[RuleError, ...] = ()
    leaders: dict[str, Leader] = field(default_factory=dict)
    _paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _routes: dict[str, Route] = field(default_factory=dict)
    inhibitions: tuple[Inhibition, ...] = ()
    templates: dict[str, dict[str, str]] = field(default_factory=dict)  # locale -> line -> text
    tiers: dict[str, str] = field(default_factory=dict)  # source -> trust tier (sources.yaml)
    _names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def tier_of(self, source: str) -> str:
        """A source's trust tier (`other` unless sources.yaml names it)."""
        return self.tiers.get(source, DEFAULT_TIER)

    def region_path(self, region_id: str) -> tuple[str, ...]:
        """The region and its ancestors, top first; () for an unassigned report."""
        return self._paths.get(region_id, ())

    def locate(self, region: str | None, lat: float | None, lon: float | None) -> str:
        """Place a report: coordinates give the deepest region covering them; a region id
        that the coordinates refine (a district inside the given governorate) gives way to
        them, otherwise the given id wins. Nothing known: UNASSIGNED."""
        placed = self.index.place(lat, lon) if lat is not None and lon is not None else None
        return self._reconcile(region, placed)

    def locate_many(
        self, wanted: Sequence[tuple[str | None, float | None, float | None]]
    ) -> list[str]:
        """`locate` for a batch of (region, lat, lon), with one spatial query for all."""
        points = [(i, lat, lon) for i, (_, lat, lon) in enumerate(wanted)
                  if lat is not None and lon is not None]  # fmt: skip
        found = self.index.place_many([(lat, lon) for _, lat, lon in points])
        placed: dict[int, str | None] = {i: f for (i, _, _), f in zip(points, found, strict=True)}
        return [self._reconcile(region, placed.get(i)) for i, (region, _, _) in enumerate(wanted)]

    def _reconcile(self, region: str | None, placed: str | None) -> str:
        if region is not None and region in self.regions:
            if placed is not None and region in self.region_path(placed):
                return placed
            return region
        return placed or UNASSIGNED

    def resolve_region(self, text: str) -> str | list[str]:
        """The region id a reporter meant: an id, or a name, Arabic name or alias in any
        case and spelling of hamza. Of several regions with that name the shallowest wins
        (Idleb the governorate over Idleb the district); a tie returns every candidate,
        an unknown name returns []."""
        if text in self.regions:
            return text
        found = self._names.get(name_key(text), ())
        if not found:
            return []
        top = min(len(self._paths[rid]) for rid in found)
        best = [rid for rid in found if len(self._paths[rid]) == top]
        return best[0] if len(best) == 1 else sorted(best)

    def subtree(self, region_id: str) -> frozenset[str]:
        """The region and every region inside it."""
        return frozenset(rid for rid, path in self._paths.items() if region_id in path)

    def routes_for(self, report: Report) -> list[Route]:
        """The routes that alert of `report` (surge routes left out)."""
        return match(self.root, report, self.region_path(report.region))

    def surges_for(self, report: Report) -> list[Route]:
        """The surge routes `report` counts toward."""
        return match_surges(self.root, report, self.region_path(report.region))

    def group_labels(self, route: Route, report: Report) -> tuple[tuple[str, str], ...]:
        return group_labels(route, report, self.region_path(report.region))

    def leaders_of(self, receiver: str) -> tuple[Leader, ...]:
        """The leaders a receiver names: a team's leaders, or one leader."""
        team = self.teams.get(receiver)
        if team is not None:
            return team.leaders
        leader = self.leaders.get(receiver)
        return (leader,) if leader is not None else ()

    def fallback_of(self, leader_id: str) -> str | None:
        """The channel for a leader whose phones cannot be reached (their own, or their
        team's), if the rules name one."""
        leader = self.leaders.get(leader_id)
        return leader.fallback if leader is not None else None

    def escalation_of(self, receiver: str) -> timedelta | None:
        """How long a group for `receiver` may go unacknowledged before its team escalates."""
        team = self.teams.get(receiver)
        return team.escalate_after if team is not None and team.escalate_to else None

    def receiver_name(self, receiver: str) -> str:
        team = self.teams.get(receiver)
        if team is not None:
            return team.name
        leader = self.leaders.get(receiver)
        return f"{leader.name} (leader, {self.teams[leader.team].name})" if leader else receiver

    def route(self, route_id: str) -> Route | None:
        return self._routes.get(route_id)

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route of the tree, root first."""
        return tuple(self._routes.values())

    def region_name(self, region_id: str, locale: str) -> str:
        region = self.regions.get(region_id)
        if region is None:
            return UNASSIGNED_NAMES.get(locale, UNASSIGNED_NAMES["en"])
        return region.name_ar if locale == "ar" else region.name


def _read(folder: Path, problems: Problems) -> tuple[dict[str, Y | None], str]:
    docs: dict[str, Y | None] = {}
    digest = hashlib.sha256()
    for name in FILES:
        path = folder / name
        shown = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.error(Loc(shown, 1, 1), f"missing file: the rules need {', '.join(FILES)}")
            docs[name] = None
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.error(Loc(shown, 1, 1), f"cannot read the file: {exc}")
            docs[name] = None
            continue
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        docs[name] = load_marked(text, shown, problems)
    for name in OPTIONAL_FILES:
        path = folder / name
        docs[name] = None
        if path.exists():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.error(Loc(str(path), 1, 1), f"cannot read the file: {exc}")
                continue
            digest.update(name.encode() + b"\0" + text.encode() + b"\0")
            docs[name] = load_marked(text, str(path), problems)
    return docs, digest.hexdigest()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """A load makes hundreds of thousands of small acyclic objects; the cyclic collector
    would walk every one of them (and the parsed-piece cache) again and again, for a third
    of the load time. Reference counting still frees them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _build(folder: Path) -> tuple[RuleSet | None, Problems]:
    with _no_cyclic_gc():
        return _build_now(folder)


def _build_now(folder: Path) -> tuple[RuleSet | None, Problems]:
    problems = Problems()
    folder = Path(folder)
    docs, sha256 = _read(folder, problems)
    c = Checker(problems)
    specs = parse_regions(docs["regions.yaml"], str(folder / "regions.yaml"), c)
    teams, _ = parse_teams(docs["teams.yaml"], str(folder / "teams.yaml"), c)
    templates = parse_templates(docs["templates.yaml"], c)
    tiers = parse_sources(docs["sources.yaml"], c)
    inhibitions: list[Inhibition] = []
    root = parse_routes(
        docs["routes.yaml"],
        str(folder / "routes.yaml"),
        c,
        inhibitions=inhibitions,
        regions=specs if docs["regions.yaml"] is not None and specs else None,
        receivers=(
            Receivers(
                frozenset(teams),
                frozenset(lead.id for team in teams.values() for lead in team.leaders),
            )
            if docs["teams.yaml"] is not None and teams
            else None
        ),
    )
    wanted: dict[str, list[tuple[str, Loc]]] = {}
    for rid, spec in specs.items():
        if spec.boundary is not None:
            wanted.setdefault(spec.boundary[0], []).append((rid, spec.boundary[1]))
    outlines, contents = read_outlines(folder, wanted, problems)
    if contents:
        digest = hashlib.sha256(sha256.encode())
        for ref, raw in contents:
            digest.update(ref.encode() + b"\0" + raw + b"\0")
        sha256 = digest.hexdigest()
    if problems.errors or root is None:
        return None, problems
    regions = {rid: spec.region for rid, spec in specs.items()}
    paths: dict[str, tuple[str, ...]] = {}
    for rid in regions:
        chain: list[str] = []
        node: str | None = rid
        while node is not None:
            chain.append(node)
            node = regions[node].parent
        paths[rid] = tuple(reversed(chain))
    polygons = {rid: s.polygon for rid, s in specs.items() if s.polygon is not None}
    polygons.update(outlines)
    index = RegionIndex(polygons, {rid: len(paths[rid]) for rid in polygons})
    ruleset = RuleSet(
        regions=regions,
        teams=teams,
        root=root,
        files=tuple(folder / name for name in (*FILES, *OPTIONAL_FILES) if docs[name] is not None),
        version=sha256[:12],
        sha256=sha256,
        index=index,
        approximate=frozenset(rid for rid, s in specs.items() if s.approximate),
        warnings=tuple(problems.warnings),
        leaders={leader.id: leader for team in teams.values() for leader in team.leaders},
        _paths=paths,
        _routes={route.id: route for route in _walk(root)},
        inhibitions=tuple(inhibitions),
        templates=templates,
        tiers=tiers,
        _names=region_names(regions.values()),
    )
    return ruleset, problems


def _walk(node: Route) -> list[Route]:
    out = [node]
    for child in node.children:
        out.extend(_walk(child))
    return out


def load_rules(folder: str | Path) -> RuleSet:
    """The rule set in `folder`, or RulesInvalid listing every error."""
    ruleset, problems = _build(Path(folder))
    if ruleset is None:
        raise RulesInvalid(problems.errors)
    return ruleset


def rule_files(folder: str | Path) -> dict[str, str]:
    """The text of every file a rule set in `folder` is made of (the YAML files and the
    GeoJSON outlines), by path within the folder: what `load_rules` reads, kept as applied."""
    root = Path(folder)
    paths = [root / name for name in (*FILES, *OPTIONAL_FILES)]
    paths += sorted(root.rglob("*.geojson"))
    out: dict[str, str] = {}
    for path in paths:
        try:
            out[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return out


def check_rules(folder: str | Path) -> list[RuleError]:
    """Every error and warning in `folder`, in file order."""
    _, problems = _build(Path(folder))
    return sorted(problems.items, key=lambda e: (e.loc, e.severity))
