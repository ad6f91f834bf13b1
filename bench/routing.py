"""Placing and routing speed: 2,000 region polygons and up to 10,000 routes.

Generates a rule set (a grid of districts under governorates, teams, and a route tree of
governorate routes with per-district and per-kind children), then times `locate` and
`routes_for` per report, how long `rules check` takes in a fresh process, and how long a
reload takes after one route is edited (what the service does when an operator saves).

    .venv/bin/python bench/routing.py [--regions 2000] [--routes 100,1000,10000]

With `--rules PATH` it times a real rule set instead (the shipped one: `--rules rules`):
random points over Aleppo and Idleb governorates, placed twice (the first pass learns the
map's cells, the second finds them remembered), and routed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import shapely

from dispatcher.model import KINDS, Report
from dispatcher.route import Route
from dispatcher.rules.load import check_rules, load_rules

GOVS = 20


def write_rules(folder: Path, n_regions: int, n_routes: int) -> None:
    per_gov = n_regions // GOVS
    cols = 10
    lines = ["regions:", "  - {id: SY, name: Syria, name_ar: سوريا}"]
    cells = []
    for g in range(GOVS):
        gx, gy = 35.5 + (g % 5) * 1.4, 32.3 + (g // 5) * 1.2
        lines.append(
            f"  - {{id: G{g:02d}, name: Gov {g}, name_ar: م{g}, parent: SY, polygon: "
            f"[[{gx}, {gy}], [{gx + 1.4}, {gy}], [{gx + 1.4}, {gy + 1.2}], [{gx}, {gy + 1.2}]]}}"
        )
        w, h = 1.4 / cols, 1.2 / ((per_gov + cols - 1) // cols)
        for d in range(per_gov):
            x, y = gx + (d % cols) * w, gy + (d // cols) * h
            rid = f"G{g:02d}D{d:03d}"
            cells.append((rid, f"G{g:02d}", x + w / 2, y + h / 2))
            lines.append(
                f"  - {{id: {rid}, name: D {rid}, name_ar: د{d}, parent: G{g:02d}, polygon: "
                f"[[{x:.5f}, {y:.5f}], [{x + w:.5f}, {y:.5f}], [{x + w:.5f}, {y + h:.5f}], "
                f"[{x:.5f}, {y + h:.5f}]]}}"
            )
    (folder / "regions.yaml").write_text("\n".join(lines) + "\n")
    teams = ["teams:"] + [
        f"  - {{id: t{i}, name: T{i}, leaders: [{{id: l{i}, name: L{i}, locale: ar}}]}}"
        for i in range(50)
    ]
    (folder / "teams.yaml").write_text("\n".join(teams) + "\n")
    routes = ["route:", "  receiver: t0", "  group_by: [region]", "  routes:"]
    made = 0
    per_gov_routes = max(1, n_routes // GOVS)
    for g in range(GOVS):
        routes += [f"    - match: {{regions: [G{g:02d}]}}", f"      receiver: t{g % 50}"]
        made += 1
        children = min(per_gov_routes - 1, per_gov * len(KINDS))
        if children > 0:
            routes.append("      routes:")
        for c in range(children):
            d, k = divmod(c, len(KINDS))
            routes += [
                f"        - match: {{regions: [G{g:02d}D{d % per_gov:03d}], kinds: [{KINDS[k]}]}}",
                f"          receiver: t{(g + c) % 50}",
                "          continue: true",
            ]
            made += 1
    (folder / "routes.yaml").write_text("\n".join(routes) + "\n")
    return None


def timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# Aleppo and Idleb governorates' bounding box (lat, lon); 64% of it lies in one of them.
BOX = ((35.35, 36.95), (36.10, 38.75))


def us(xs: list[float], q: float) -> str:
    return f"{sorted(xs)[int(q * (len(xs) - 1))] * 1e6:7.1f}"


def real_rules(folder: Path, n_reports: int, rng: random.Random) -> None:
    """Place and route random points over the two governorates with the rules in `folder`."""
    check_s = timed(check_rules, folder)
    rules = load_rules(folder)
    (lat0, lat1), (lon0, lon1) = BOX
    points = [(rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)) for _ in range(n_reports)]
    now = datetime.now(UTC)
    passes: list[list[float]] = []
    for _ in range(2):
        took = []
        for lat, lon in points:
            t0 = time.perf_counter()
            rules.locate(None, lat, lon)
            took.append(time.perf_counter() - t0)
        passes.append(took)
    route = []
    for lat, lon in points:
        report = Report(source="b", id="1", kind=rng.choice(KINDS), occurred_at=now,
                        region=rules.locate(None, lat, lon))  # fmt: skip
        t0 = time.perf_counter()
        rules.routes_for(report)
        route.append(time.perf_counter() - t0)
    cells, border = rules.index.remembered()
    vertices = sum(len(shapely.get_coordinates(g)) for g in rules.index.outlines().values())
    print(
        f"{folder}: {len(rules.index)} outlines, {vertices} vertices; {n_reports} points; "
        f"{cells} cells met, {border} crossed by a border\n"
        f"  place, learning cells p50 {us(passes[0], 0.5)} µs p99 {us(passes[0], 0.99)} µs"
        f" | remembered p50 {us(passes[1], 0.5)} µs p99 {us(passes[1], 0.99)} µs"
        f" (mean {statistics.mean(passes[1]) * 1e6:.2f} µs)\n"
        f"  route p50 {us(route, 0.5)} µs p99 {us(route, 0.99)} µs | rules check {check_s:.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regions", type=int, default=2000)
    ap.add_argument("--routes", default="100,1000,10000")
    ap.add_argument("--reports", type=int, default=20000)
    ap.add_argument("--rules", type=Path, action="append", help="time this rule set instead")
    args = ap.parse_args()
    rng = random.Random(7)
    if args.rules:
        for folder in args.rules:
            real_rules(folder, args.reports, random.Random(7))
        return
    now = datetime.now(UTC)
    print(f"{args.regions} region polygons; times per report over {args.reports} reports")
    for n_routes in (int(x) for x in args.routes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_rules(folder, args.regions, n_routes)
            # A check in a fresh process parses everything; a reload in the service after an
            # operator's edit reuses the pieces of the files that did not change.
            check_s = timed(check_rules, folder)
            routes_file = folder / "routes.yaml"
            routes_file.write_text(
                routes_file.read_text().replace("receiver: t1\n", "receiver: t2\n", 1)
            )
            start = time.perf_counter()
            rules = load_rules(folder)
            load_s = time.perf_counter() - start
            points = [
                (rng.uniform(32.3, 37.1), rng.uniform(35.5, 42.5)) for _ in range(args.reports)
            ]
            place, route = [], []
            for lat, lon in points:
                t0 = time.perf_counter()
                region = rules.locate(None, lat, lon)
                t1 = time.perf_counter()
                report = Report(source="b", id="1", kind=rng.choice(KINDS), occurred_at=now,
                                region=region)  # fmt: skip
                rules.routes_for(report)
                t2 = time.perf_counter()
                place.append(t1 - t0)
                route.append(t2 - t1)
            both = sorted(p + r for p, r in zip(place, route, strict=True))
            total = sum(1 for _ in _walk(rules.root))
            print(
                f"routes {total:6d}: place p50 {us(place, 0.5)} µs p99 {us(place, 0.99)} µs | "
                f"route p50 {us(route, 0.5)} µs p99 {us(route, 0.99)} µs | "
                f"both p99 {both[int(0.99 * (len(both) - 1))] * 1e6:7.1f} µs | "
                f"check (cold) {check_s:5.2f} s, reload after an edit {load_s:5.2f} s"
                f" (mean both {statistics.mean(both) * 1e6:.1f} µs)"
            )


def _walk(node: Route) -> Iterator[Route]:
    yield node
    for child in node.children:
        yield from _walk(child)


if __name__ == "__main__":
    main()
