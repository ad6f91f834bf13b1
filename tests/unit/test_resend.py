"""A resend of a held revision: which differences make it a conflict, and how it is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dispatcher.model import Casualties, Point, Report
from dispatcher.resend import Difference, conflict_detail, resend_differences

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HELD = Report(
    source="obs", id="r1", kind="airstrike", occurred_at=T0, region="SY0703",
    casualties=Casualties(killed=3, injured=2), status="unconfirmed", revision=1,
    location=Point(36.12, 36.52), given_region="SY07", notes="near the market",
    incident="abc",
)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, []),
        ({"region": "SY0700"}, []),  # placed by the rules: derived, not said
        ({"incident": None}, []),  # a resend naming none leaves the incident alone
        ({"incident": "abc"}, []),
        ({"occurred_at": T0.astimezone(timezone(timedelta(hours=3)))}, []),  # one instant
        ({"notes": None, "_held": {"notes": ""}}, []),  # an empty note is no note
        ({"casualties": Casualties(killed=5, injured=2)}, [("casualties.killed", "3", "5")]),
        (
            {"casualties": Casualties(killed=3, injured=1, rescued=4)},
            [("casualties.injured", "2", "1"), ("casualties.rescued", "0", "4")],
        ),
        ({"kind": "shelling"}, [("kind", "airstrike", "shelling")]),
        (
            {"occurred_at": T0 + timedelta(seconds=1)},
            [("occurred_at", "2026-11-24T12:00:00+00:00", "2026-11-24T12:00:01+00:00")],
        ),
        ({"location": None}, [("location", "36.12,36.52", "none")]),
        ({"location": Point(36.12, 36.53)}, [("location", "36.12,36.52", "36.12,36.53")]),
        ({"given_region": "SY0703"}, [("region", "SY07", "SY0703")]),
        ({"status": "retracted"}, [("status", "unconfirmed", "retracted")]),
        ({"notes": "by the mosque"}, [("notes", "15 characters", "13 characters")]),
        ({"incident": "other"}, [("incident", "abc", "other")]),
        ({"site": "building-north"}, [("site", "none", "building-north")]),
        ({"site": "b", "_held": {"site": "a"}}, [("site", "a", "b")]),
        ({"tier": "own"}, []),  # the source's tier: derived from the rules, not said
    ],
)
def test_what_makes_a_resend_conflict(
    change: dict[str, Any], expected: list[tuple[str, ...]]
) -> None:
    held = HELD._replace(**change.pop("_held", {}))
    found = resend_differences(HELD._replace(**change), held, "abc")
    assert [(d.field, d.stored, d.sent) for d in found] == expected


def test_the_incident_a_resend_names_is_compared_with_the_one_held() -> None:
    unnamed = HELD._replace(incident=None)
    assert resend_differences(unnamed._replace(incident="abc"), unnamed, "abc") == []
    (d,) = resend_differences(unnamed._replace(incident="x"), unnamed, "abc")
    assert (d.field, d.message) == ("incident", "stored abc, sent x")


@pytest.mark.parametrize(
    ("differences", "newest", "detail"),
    [
        (
            [Difference("casualties.killed", "3", "5")],
            1,
            "revision 1 is stored with other counts (killed 3, not 5); "
            "send it as revision 2 to correct it",
        ),
        (
            [Difference("casualties.killed", "3", "5"), Difference("casualties.trapped", "0", "2"),
             Difference("status", "unconfirmed", "confirmed")],
            4,
            "revision 1 is stored with other counts (killed 3, not 5; trapped 0, not 2) and "
            "another status (unconfirmed, not confirmed); send it as revision 5 to correct it",
        ),
    ],
)  # fmt: skip
def test_a_conflict_is_told_in_words(
    differences: list[Difference], newest: int, detail: str
) -> None:
    assert conflict_detail(1, newest, differences) == detail
