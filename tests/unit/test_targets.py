"""Routing remembered per rule set: the same answer as walking the tree, every time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.model import STATUSES, Casualties, Report
from dispatcher.rules.load import load_rules
from dispatcher.targets import Router, route_report

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_remembered_routing_is_the_tree_walk_for_every_combination() -> None:
    rules = load_rules(ROOT / "rules")
    router = Router(rules)
    regions = [*rules.regions, "unassigned"]
    for region, kind, status, killed, source in itertools.product(
        regions, ["airstrike", "fire"], STATUSES, [0, 9, 10, 40], ["obs", "spotter"]
    ):
        report = Report(source, "r", kind, T0, region, Casualties(killed=killed), status)
        for _ in range(2):  # worked out, then remembered
            assert router(report) == route_report(rules, report), (region, kind, status, killed)


def test_a_report_past_a_threshold_is_routed_apart_from_one_below_it() -> None:
    router = Router(load_rules(ROOT / "rules"))
    quiet = router(Report("obs", "a", "airstrike", T0, "SY0703", Casualties(killed=3)))
    heavy = router(Report("obs", "b", "airstrike", T0, "SY0703", Casualties(killed=12)))
    assert "mass-casualty" in heavy.routes
    assert "mass-casualty" not in quiet.routes
    assert any(heavy.immediate)
    assert not any(quiet.immediate)
    shared = set(quiet.targets) & set(heavy.targets)
    assert shared, "the routine groups they share are the same targets"
    assert all(
        next(t for t in heavy.targets if t == s) is next(t for t in quiet.targets if t == s)
        for s in shared
    ), "one target object per group, however it was reached"


@pytest.mark.parametrize(
    "routes",
    [
        "    - {match: {sources: [observatory]}, receiver: harim-center}\n",
        "    - {match: {not: {sources: [observatory]}}, receiver: harim-center}\n",
        "    - {match: {kinds: [fire]}, routes: [{match: {sources: [observatory]}}]}\n",
        "    - {match: {regions: [SY0703]}, receiver: harim-center, group_by: [source]}\n",
    ],
)
def test_routes_that_ask_the_source_are_remembered_per_source(tmp_path: Path, routes: str) -> None:
    for name in ("regions.yaml", "teams.yaml"):
        (tmp_path / name).write_text((ROOT / "tests/testdata/rules-e2e" / name).read_text())
    (tmp_path / "routes.yaml").write_text("route:\n  receiver: idleb-center\n  routes:\n" + routes)
    rules = load_rules(tmp_path)
    router = Router(rules)
    for source, kind in itertools.product(
        ["observatory", "spotter", "observatory"], ["fire", "flood"]
    ):
        report = Report(source, "r", kind, T0, "SY0703", Casualties(killed=1))
        assert router(report) == route_report(rules, report), (routes, source, kind)
