"""Which incident a report joins: the merge rule, as a table."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.counting import family
from dispatcher.incidents import Candidate, IncidentIndex, MergeRule, absorbs, distance_m, pick
from dispatcher.model import Point, Report

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HERE = Point(35.9300, 36.6300)
RULE = MergeRule(radius_m=500, window=timedelta(minutes=15))


def north(metres: float) -> Point:
    return Point(HERE.lat + metres / 111_195, HERE.lon)


def report(*, source: str = "spotter", kind: str = "airstrike", at: Point | None = HERE,
           minutes: float = 0) -> Report:  # fmt: skip
    return Report(
        source=source,
        id="r",
        kind=kind,
        occurred_at=T0 + timedelta(minutes=minutes),
        region="SY0700",
        location=at,
    )


def cand(cid: str, *, at: Point = HERE, minutes: float = 0, kind: str = "airstrike",
         sources: tuple[str, ...] = ("observatory",),
         anchored: bool = False) -> Candidate:  # fmt: skip
    return Candidate(
        cid, family(kind), at, T0 + timedelta(minutes=minutes), tuple(sorted(sources)), anchored
    )


@pytest.mark.parametrize(
    ("new", "candidates", "expected", "why"),
    [
        (report(), [cand("a")], "a", "another observer, same place and time"),
        (report(at=north(450)), [cand("a")], "a", "within 500 m"),
        (report(at=north(550)), [cand("a")], None, "beyond 500 m"),
        (report(at=north(700)), [cand("a")], None, "two strikes 700 m apart, no anchor"),
        (report(at=north(950)), [cand("a", anchored=True)], "a", "our team's within 1 km"),
        (report(at=north(1050)), [cand("a", anchored=True)], None, "our team's beyond 1 km"),
        (
            report(at=north(300)),
            [cand("near"), cand("team", at=north(900), anchored=True)],
            "team",
            "an anchor within 1 km wins over a nearer incident without one",
        ),
        (
            report(at=north(325)),
            [
                cand("far", at=north(-300), anchored=True),
                cand("team", at=north(650), anchored=True),
            ],
            "team",
            "the nearest anchor",
        ),
        (
            report(at=north(800), minutes=16),
            [cand("a", anchored=True)],
            None,
            "an anchor is still bound by the window",
        ),
        (
            report(source="observatory", at=north(800)),
            [cand("a", anchored=True)],
            None,
            "an anchor is still skipped by a source that joined it",
        ),
        (report(kind="missile"), [cand("a")], "a", "a missile and an airstrike: one family"),
        (report(kind="barrel_bomb"), [cand("a", kind="missile")], "a", "barrel bomb too"),
        (report(kind="shelling"), [cand("a", kind="missile")], None, "shelling is its own"),
        (report(minutes=14), [cand("a")], "a", "within 15 minutes"),
        (report(minutes=16), [cand("a")], None, "beyond 15 minutes"),
        (report(kind="shelling"), [cand("a")], None, "another kind is another event"),
        (report(source="observatory"), [cand("a")], None, "one source twice: two events"),
        (report(at=None), [cand("a")], None, "no coordinates: joins only by name"),
        (report(at=north(100)), [cand("far", at=north(400)), cand("near")], "near", "nearest"),
        (report(), [cand("late", minutes=10), cand("early", minutes=-2)], "early", "closest"),
    ],
)
def test_pick(new: Report, candidates: list[Candidate], expected: str | None, why: str) -> None:
    assert pick(new, candidates, RULE) == expected, why


def test_distance_is_great_circle() -> None:
    assert distance_m(HERE, north(1000)) == pytest.approx(1000, rel=1e-3)
    aleppo, idleb = Point(36.2021, 37.1343), Point(35.9306, 36.6339)
    assert distance_m(aleppo, idleb) == pytest.approx(54_000, rel=0.02)


# --- the in-memory index the SQLite writer answers the merge lookup from ---------------


def east(metres: float, at: Point = HERE) -> Point:
    return Point(at.lat, at.lon + metres / (111_195 * math.cos(math.radians(at.lat))))


def index(*incidents: tuple[str, Point, float, tuple[str, ...]], kind: str = "airstrike",
          since_minutes: float = -600) -> IncidentIndex:  # fmt: skip
    idx = IncidentIndex(RULE, since=T0 + timedelta(minutes=since_minutes))
    for iid, at, minutes, sources in incidents:
        idx.add(iid, kind, at, T0 + timedelta(minutes=minutes), sources)
    return idx


@pytest.mark.parametrize(
    ("held", "new", "expected", "why"),
    [
        ([("a", HERE, 0, ("observatory",))], report(), "a", "same place and time"),
        ([("a", north(480), 0, ("observatory",))], report(), "a", "480 m north"),
        ([("a", east(480), 0, ("observatory",))], report(), "a", "480 m east: a wider cell"),
        ([("a", north(520), 0, ("observatory",))], report(), None, "beyond the radius"),
        ([("a", HERE, 14, ("observatory",))], report(), "a", "within the window"),
        ([("a", HERE, -16, ("observatory",))], report(), None, "before the window"),
        ([("a", HERE, 0, ("spotter",))], report(), None, "the same source saw two events"),
        ([("a", HERE, 0, ("observatory", "spotter"))], report(), None, "joined by it already"),
        ([("far", north(300), 0, ("o",)), ("near", east(100), 0, ("o",))], report(), "near",
         "the nearest of two"),
    ],
)  # fmt: skip
def test_the_index_finds_what_the_rule_picks(
    held: list[tuple[str, Point, float, tuple[str, ...]]], new: Report, expected: str | None,
    why: str,
) -> None:  # fmt: skip
    assert pick(new, index(*held).candidates(new), RULE) == expected, why


@pytest.mark.parametrize(
    ("base", "spread", "hours"),
    [
        (HERE, 0.05, 0.5),
        (Point(59.9, 10.7), 0.05, 0.5),
        (Point(-33.9, 18.4), 0.05, 0.5),
        (HERE, 0.004, 6),  # a town under fire for six hours: thousands in a few cells
    ],
)
def test_the_index_never_misses_what_a_full_scan_finds(
    base: Point, spread: float, hours: float
) -> None:
    """For every report the index's candidates give the same pick as every incident held,
    across many cell edges and time slots."""
    rng = random.Random(7)
    idx = IncidentIndex(RULE, since=T0 - timedelta(hours=hours + 1))
    everyone = []

    def somewhere() -> Point:
        return Point(
            base.lat + rng.uniform(-spread, spread), base.lon + rng.uniform(-spread, spread)
        )

    kinds = ["airstrike", "missile", "shelling"]
    for n in range(2000):
        kind = rng.choice(kinds)
        minutes = rng.uniform(-60 * hours, 60 * hours)
        c = Candidate(f"i{n}", family(kind), somewhere(), T0 + timedelta(minutes=minutes),
                      (f"s{rng.randint(1, 6)}",), rng.random() < 0.2)  # fmt: skip
        assert c.location is not None
        idx.add(c.id, kind, c.location, c.occurred_at, c.sources, c.anchored)
        everyone.append(c)
    for n in range(500):
        when = T0 + timedelta(minutes=rng.uniform(-60 * hours, 60 * hours))
        kind = rng.choice(kinds)
        new = Report(f"s{rng.randint(1, 6)}", f"r{n}", kind, when, "SY0700", location=somewhere())
        assert pick(new, idx.candidates(new), RULE) == pick(new, everyone, RULE)


def test_the_index_answers_only_from_since_and_lets_go_of_older_incidents() -> None:
    idx = index(("old", HERE, -120, ("o",)), ("recent", HERE, -5, ("o",)), since_minutes=-180)
    assert idx.covers(report(minutes=0))
    idx.forget_before(T0 - timedelta(minutes=60))
    assert "old" not in idx
    assert "recent" in idx
    assert idx.covers(report(minutes=-30)), "its window starts at since: all it could join held"
    assert not idx.covers(report(minutes=-50)), "an older strike: ask the table"


def test_joining_and_adding_to_an_index() -> None:
    idx = index(("a", HERE, 0, ("observatory",)))
    idx.join("a", "spotter")
    assert pick(report(), idx.candidates(report()), RULE) is None, "spotter already joined a"
    idx.add("b", "airstrike", north(100), T0, ("radio",))
    assert pick(report(), idx.candidates(report()), RULE) == "b"
    assert len(idx) == 2


def test_an_own_report_joining_makes_an_incident_an_anchor_in_the_index() -> None:
    idx = index(("a", HERE, 0, ("observatory",)))
    far = report(source="witness", at=north(800))
    assert pick(far, idx.candidates(far), RULE) is None, "800 m from an incident of observers"
    idx.join("a", "civil-defence", anchors=True)
    assert [c.id for c in idx.candidates(far)] == ["a"]
    assert pick(far, idx.candidates(far), RULE) == "a", "800 m from one our team reported"
    idx.join("a", "civil-defence")  # a second report of the team keeps the anchor
    assert pick(far, idx.candidates(far), RULE) == "a"
    missile = report(source="witness-2", kind="missile", at=north(800))
    assert pick(missile, idx.candidates(missile), RULE) == "a", "of the same family"


@pytest.mark.parametrize("window", [RULE.window, timedelta(minutes=15, microseconds=300_001)])
def test_an_incident_exactly_a_window_away_is_found(window: timedelta) -> None:
    """The rule's edge is inside (`pick` takes a gap of exactly the window): the index,
    which compares times as floats, must not lose such an incident to rounding, at any
    time of day or slot edge, whatever the window (most such windows are not a whole
    number of seconds in binary)."""
    rule = MergeRule(radius_m=500, window=window)
    rng = random.Random(11)
    for n in range(3000):
        at = T0 + timedelta(seconds=rng.uniform(-1e7, 1e7), microseconds=rng.randint(0, 999_999))
        idx = IncidentIndex(rule, since=at - 2 * window)
        idx.add("before", "airstrike", HERE, at - window, ("radio",))
        idx.add("after", "airstrike", HERE, at + window, ("hospital",))
        new = Report(f"s{n}", f"r{n}", "airstrike", at, "SY0700", location=HERE)
        found = idx.candidates(new)
        assert {c.id for c in found} == {"before", "after"}, at
        assert pick(new, found, rule) in {"before", "after"}


@pytest.mark.parametrize(
    ("candidates", "into_sources", "expected", "why"),
    [
        ([cand("team"), cand("south", at=north(-325), sources=("witness",))], ("observatory",),
         ["south"], "an observer's incident 325 m from our team's report"),
        ([cand("south", at=north(-1100))], (), [], "beyond the anchor radius"),
        ([cand("south", at=north(-325), anchored=True)], (), [], "another team's: two strikes"),
        ([cand("south", at=north(-325), sources=("observatory",))], ("observatory",), [],
         "a source of the team's incident reported it: two events"),
        ([cand("a", at=north(-325), sources=("w",)), cand("b", at=north(400), sources=("w",))],
         (), ["a"], "one source's two reports: only the nearer joins"),
        ([cand("south", at=north(-325), minutes=16)], (), [], "outside the window"),
        ([cand("south", at=north(-325), kind="shelling")], (), [], "another kind family"),
        ([cand("m", at=north(-325), kind="missile", sources=("x",))], (), ["m"], "a missile"),
    ],
)  # fmt: skip
def test_what_our_team_s_report_gathers(
    candidates: list[Candidate], into_sources: tuple[str, ...], expected: list[str], why: str
) -> None:
    team = report(source="civil-defence")
    assert absorbs(team, "team", into_sources, candidates, RULE) == expected, why
