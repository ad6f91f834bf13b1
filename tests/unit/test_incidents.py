"""Which incident a report joins: the merge rule, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.incidents import Candidate, MergeRule, distance_m, pick
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
         sources: tuple[str, ...] = ("observatory",)) -> Candidate:  # fmt: skip
    return Candidate(cid, kind, at, T0 + timedelta(minutes=minutes), tuple(sorted(sources)))


@pytest.mark.parametrize(
    ("new", "candidates", "expected", "why"),
    [
        (report(), [cand("a")], "a", "another observer, same place and time"),
        (report(at=north(450)), [cand("a")], "a", "within 500 m"),
        (report(at=north(550)), [cand("a")], None, "beyond 500 m"),
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
