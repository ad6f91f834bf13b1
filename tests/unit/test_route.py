"""Which teams a report reaches: the route tree, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.model import UNASSIGNED, Casualties, Report
from dispatcher.rules.load import RuleSet, load_rules

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(ROOT / "rules")


def report(
    region: str,
    kind: str = "airstrike",
    *,
    killed: int = 0,
    status: str = "unconfirmed",
    source: str = "s",
) -> Report:
    return Report(
        source=source,
        id="1",
        kind=kind,
        occurred_at=T0,
        region=region,
        casualties=Casualties(killed=killed),
        status=status,
    )


@pytest.mark.parametrize(
    ("region", "receivers", "why"),
    [
        ("SY0703", ["harim-center", "idleb-center"], "continue: Harim goes on to Idleb"),
        ("SY0700", ["idleb-center"], "a district matches its governorate's route"),
        ("SY07", ["idleb-center"], "the governorate itself"),
        ("SY0204", ["aleppo-center"], "first match in Aleppo"),
        ("SY", ["central-desk"], "no child matches: the root takes it"),
        (UNASSIGNED, ["central-desk"], "a report in no region reaches only the root"),
    ],
)
def test_receivers(shipped: RuleSet, region: str, receivers: list[str], why: str) -> None:
    assert [r.receiver for r in shipped.routes_for(report(region))] == receivers, why


def test_children_inherit_and_override(shipped: RuleSet) -> None:
    harim, idleb = shipped.routes_for(report("SY0703"))
    assert harim.group_by == ("region",)
    assert harim.group_wait == timedelta(seconds=15)
    assert harim.group_interval == timedelta(minutes=2), "inherited from the root"
    assert idleb.group_by == ("region:1",), "inherited from the root"


@pytest.mark.parametrize(
    ("region", "labels"),
    [
        ("SY0703", (("region", "SY07"),)),
        ("SY07", (("region", "SY07"),)),
        ("SY", (("region", "SY"),)),
        (UNASSIGNED, (("region", UNASSIGNED),)),
    ],
)
def test_region_depth_grouping(shipped: RuleSet, region: str, labels: tuple[object]) -> None:
    root = shipped.root
    assert shipped.group_labels(root, report(region)) == labels


def test_kind_matchers(tmp_path: Path) -> None:
    for name in ("regions.yaml", "teams.yaml"):
        (tmp_path / name).write_text((ROOT / "tests/testdata/rules-e2e" / name).read_text())
    (tmp_path / "routes.yaml").write_text(
        "route:\n"
        "  receiver: idleb-center\n"
        "  routes:\n"
        "    - {match: {kinds: [chemical]}, receiver: harim-center}\n"
    )
    rules = load_rules(tmp_path)
    assert [r.receiver for r in rules.routes_for(report("SY07", "chemical"))] == ["harim-center"]
    assert [r.receiver for r in rules.routes_for(report("SY07", "fire"))] == ["idleb-center"]
    assert [r.receiver for r in rules.routes_for(report(UNASSIGNED, "chemical"))] == [
        "harim-center"
    ], "a kind-only route takes reports from anywhere"


MATCHERS = """\
route:
  receiver: idleb-center
  routes:
    - {name: mass-casualty, match: {killed: ">= 5", not: {statuses: [retracted]}},
       receiver: harim-center, continue: true}
    - {name: confirmed-only, match: {statuses: [confirmed], sources: [observatory]},
       receiver: harim-center}
    - {name: outside-harim, match: {regions: [SY07], not: {regions: [SY0703]}, injured: 1},
       receiver: harim-center}
"""


@pytest.mark.parametrize(
    ("region", "kwargs", "routes"),
    [
        ("SY0703", {"killed": 5}, ["mass-casualty"]),
        ("SY0703", {"killed": 4}, ["root"]),
        ("SY0703", {"killed": 9, "status": "retracted"}, ["root"]),
        ("SY0703", {"status": "confirmed", "source": "observatory"}, ["confirmed-only"]),
        ("SY0703", {"status": "confirmed", "source": "spotter"}, ["root"]),
        ("SY0703", {"killed": 7, "status": "confirmed", "source": "observatory"},
         ["mass-casualty", "confirmed-only"]),
        ("SY07", {}, ["root"]),
    ],
)  # fmt: skip
def test_status_source_threshold_and_negated_matchers(
    tmp_path: Path, region: str, kwargs: dict[str, object], routes: list[str]
) -> None:
    for name in ("regions.yaml", "teams.yaml"):
        (tmp_path / name).write_text((ROOT / "tests/testdata/rules-e2e" / name).read_text())
    (tmp_path / "routes.yaml").write_text(MATCHERS)
    rules = load_rules(tmp_path)
    got = rules.routes_for(report(region, **kwargs))  # type: ignore[arg-type]
    assert [r.id for r in got] == routes


def test_immediate_routes_and_single_leader_receivers(tmp_path: Path) -> None:
    for name in ("regions.yaml", "teams.yaml"):
        (tmp_path / name).write_text((ROOT / "tests/testdata/rules-e2e" / name).read_text())
    (tmp_path / "routes.yaml").write_text(
        "route:\n"
        "  receiver: idleb-center\n"
        "  group_wait: 30s\n"
        "  routes:\n"
        "    - name: critical\n"
        "      match: {killed: 10}\n"
        "      receiver: harim-lead-1\n"
        "      immediate: true\n"
        "      routes:\n"
        "        - {name: critical-chemical, match: {kinds: [chemical]}}\n"
        "        - {name: critical-fire, match: {kinds: [fire]}, immediate: false}\n"
    )
    rules = load_rules(tmp_path)
    (chemical,) = rules.routes_for(report("SY07", "chemical", killed=12))
    assert chemical.id == "critical-chemical"
    assert chemical.immediate, "children inherit immediate"
    assert chemical.effective_wait == timedelta(0)
    assert chemical.effective_interval == timedelta(0)
    (fire,) = rules.routes_for(report("SY07", "fire", killed=12))
    assert not fire.immediate
    assert fire.effective_wait == timedelta(seconds=30)
    assert [leader.id for leader in rules.leaders_of(chemical.receiver)] == ["harim-lead-1"]
    assert rules.receiver_name("harim-lead-1") == "Omar (leader, Harim Center)"
    assert [leader.id for leader in rules.leaders_of("idleb-center")] == [
        "idleb-lead-1",
        "idleb-lead-2",
    ]
