"""An incident's figures from its live reports, field by field, as a table."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.counting import (
    COUNT_FIELDS,
    POLICIES,
    TIERS,
    FieldCount,
    changed,
    count,
    count_field,
    family,
    family_kinds,
    incident_kind,
    single,
)
from dispatcher.model import Casualties, Report

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def r(source: str, tier: str = "other", *, killed: int = 0, trapped: int = 0, rescued: int = 0,
      site: str | None = None, minutes: float = 0, received: float | None = None,
      kind: str = "airstrike") -> Report:  # fmt: skip
    return Report(
        source=source,
        id=f"{source}-{site}-{minutes}",
        kind=kind,
        occurred_at=T0 + timedelta(minutes=minutes),
        region="SY0703",
        casualties=Casualties(killed=killed, trapped=trapped, rescued=rescued),
        tier=tier,
        site=site,
        received_at=T0 + timedelta(minutes=received if received is not None else minutes),
    )


@pytest.mark.parametrize(
    ("field", "reports", "expected", "why"),
    [
        (
            "killed",
            [r("observatory", "trusted", killed=9), r("team", "own", killed=6)],
            FieldCount(6, "own", ("team",), 6, 9),
            "scenario 1: the team's 6 wins over an observatory's early 9, shown as the range",
        ),
        (
            "killed",
            [r("team", "own", killed=6), r("observatory", "trusted", killed=9)],
            FieldCount(6, "own", ("team",), 6, 9),
            "the order received does not matter for a largest figure",
        ),
        (
            "killed",
            [r("team", "own", killed=0), r("observatory", "trusted", killed=9)],
            FieldCount(9, "trusted", ("observatory",), 9, 9),
            "a team's 0 killed is not a count: the next tier that counted gives the figure",
        ),
        (
            "killed",
            [r("a", killed=3), r("b", killed=5)],
            FieldCount(5, "other", ("b",), 3, 5),
            "one tier, no sites: the largest, never the sum",
        ),
        (
            "killed",
            [r("a"), r("b")],
            FieldCount(),
            "nobody counted: 0, set by no one",
        ),
        (
            "trapped",
            [
                r("witness", trapped=4, minutes=0),
                r("team", "own", trapped=4, minutes=1),
                r("team-2", "own", trapped=0, minutes=30),
            ],
            FieldCount(0, "own", ("team-2",), 0, 4),
            "scenario 2: trapped is the latest of the highest tier; 0 is an answer",
        ),
        (
            "trapped",
            [r("witness", trapped=3, minutes=0), r("spotter", trapped=0, minutes=5)],
            FieldCount(3, "other", ("witness",), 3, 3),
            "an observer's 0 trapped is a field left out, not all out",
        ),
        (
            "trapped",
            [r("observatory", "trusted", trapped=2), r("team", "own", trapped=0, minutes=1)],
            FieldCount(0, "own", ("team",), 0, 2),
            "our team's 0 trapped is an answer",
        ),
        (
            "trapped",
            [
                r("team", "own", trapped=4, minutes=5, received=40),
                r("team-2", "own", trapped=0, minutes=5, received=30),
            ],
            FieldCount(4, "own", ("team",), 0, 4),
            "reports of one strike time: the one received last is the latest",
        ),
        (
            "rescued",
            [r("team", "own", rescued=1, minutes=1), r("team-2", "own", rescued=4, minutes=30)],
            FieldCount(4, "own", ("team-2",), 1, 4),
            "rescued keeps rising: the largest",
        ),
        (
            "killed",
            [
                r("team-a", "own", killed=5, site="north"),
                r("team-b", "own", killed=3, site="south"),
                r("observatory", "trusted", killed=6),
            ],
            FieldCount(8, "own", ("team-a", "team-b"), 3, 6),
            "scenario 3: two buildings of one strike add up",
        ),
        (
            "killed",
            [
                r("team-a", "own", killed=5, site="north"),
                r("team-b", "own", killed=4, site="north"),
            ],
            FieldCount(5, "own", ("team-a",), 4, 5),
            "two reports of one site are never summed",
        ),
        (
            "killed",
            [
                r("team-a", "own", killed=5, site="north"),
                r("team-b", "own", killed=3, site="south"),
                r("team-c", "own", killed=6),
            ],
            FieldCount(8, "own", ("team-a", "team-b"), 3, 6),
            "a report with no site speaks for the whole: the larger of it and the sites' sum",
        ),
        (
            "killed",
            [r("team-a", "own", killed=5, site="north"), r("team-c", "own", killed=11)],
            FieldCount(11, "own", ("team-c",), 5, 11),
            "a whole-incident total above the sites' sum is the figure",
        ),
        (
            "trapped",
            [
                r("team-a", "own", trapped=2, site="north", minutes=1),
                r("team-a", "own", trapped=0, site="north", minutes=20),
                r("team-b", "own", trapped=3, site="south", minutes=5),
            ],
            FieldCount(3, "own", ("team-a", "team-b"), 0, 3),
            "trapped: the latest per site, summed over the sites",
        ),
        (
            "killed",
            [r("x", "unheard-of", killed=4), r("y", "other", killed=2)],
            FieldCount(4, "other", ("x",), 2, 4),
            "a tier this version does not know counts as other",
        ),
    ],
)
def test_count_field(field: str, reports: list[Report], expected: FieldCount, why: str) -> None:
    assert count_field(field, reports, POLICIES[field]) == expected, why


def test_an_incident_counts_each_field_and_shows_the_highest_anyone_reports() -> None:
    c = count([
        r("observatory", "trusted", killed=9, trapped=4, minutes=0),
        r("team", "own", killed=6, trapped=0, rescued=4, minutes=20, kind="missile"),
    ])  # fmt: skip
    assert c.casualties == Casualties(killed=6, trapped=0, rescued=4)
    assert c.highs == Casualties(killed=9, trapped=4, rescued=4)
    assert c.kind == "missile", "the highest tier's kind"
    assert c.as_list() == [6, 0, 0, 4, 0, 9, 0, 4, 4]


def test_one_report_counts_as_it_says() -> None:
    c = count([r("team", "own", killed=2, minutes=0)])
    assert c.fields[0] == FieldCount(2, "own", ("team",), 2, 2)
    assert c.fields[1] == FieldCount(), "0 injured: not given"
    assert c.fields[2] == FieldCount(0, "own", ("team",), 0, 0), "0 trapped: an answer"
    assert count([r("witness", minutes=0)]).fields[2] == FieldCount(), "an observer's 0"
    assert count([]).fields == (FieldCount(),) * 4


@pytest.mark.parametrize(
    ("reports", "kind"),
    [
        ([r("a", kind="missile"), r("b", "trusted", kind="airstrike")], "airstrike"),
        ([r("a", "own", kind="barrel_bomb"), r("b", "trusted", kind="airstrike")], "barrel_bomb"),
        ([r("a", kind="missile", minutes=0), r("b", kind="airstrike", minutes=2)], "airstrike"),
    ],
)
def test_the_incident_kind_is_the_highest_tiers_latest(reports: list[Report], kind: str) -> None:
    assert incident_kind(reports) == kind


def test_kind_families() -> None:
    assert family("missile") == family("barrel_bomb") == family("airstrike")
    assert family("shelling") == "shelling"
    assert family_kinds("missile") == ("airstrike", "missile", "barrel_bomb")
    assert family_kinds("fire") == ("fire",)


@pytest.mark.parametrize(
    ("before", "now", "expected"),
    [
        ([6, 0, 0, 0, 0], [6, 0, 0, 0, 0, 9, 0, 0, 0], False),  # recorded before 0016
        ([6, 0, 0, 0, 0, 9, 0, 0, 0], [6, 0, 0, 0, 0, 9, 0, 0, 0], False),
        ([6, 0, 0, 0, 0, 9, 0, 0, 0], [6, 0, 0, 0, 0, 12, 0, 0, 0], True),  # others say more
        ([6, 0, 0, 0, 0, 9, 0, 0, 0], [7, 0, 0, 0, 0, 9, 0, 0, 0], True),
    ],
)
def test_what_an_update_compares(before: list[int], now: list[int], expected: bool) -> None:
    assert changed(before, now) is expected


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("status", ["unconfirmed", "confirmed"])
def test_an_incident_of_one_report_counts_as_the_rule_for_many_says(tier: str, status: str) -> None:
    """`single`, the fast path for most incidents, against the field-by-field rule."""
    for figures in itertools.product((0, 3), repeat=4):
        report = Report("obs", "r1", "shelling", T0, "SY0703", Casualties(*figures),
                        status=status, tier=tier)  # fmt: skip
        fields = tuple(count_field(name, [report], POLICIES[name]) for name in COUNT_FIELDS)
        got = single(report)
        assert got.fields == fields
        assert got.casualties == Casualties(*(f.value for f in fields))
        assert got.highs == Casualties(*(max(f.value, f.high) for f in fields))
        assert (got.confirmed, got.live_reports, got.kind) == (status == "confirmed", 1, "shelling")
