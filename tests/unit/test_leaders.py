"""What a leader's app is told: whose groups reach them, and where sources disagree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dispatcher.rules.load import load_rules
from dispatcher.web.leaders import disagreement, receivers_for

E2E = Path(__file__).resolve().parents[1] / "testdata" / "rules-e2e"


@pytest.mark.parametrize(
    ("summary", "ranges"),
    [
        ({"totals": {"killed": 6, "injured": 2}}, {}),  # an update recorded before highs
        ({"totals": {"killed": 6}, "highs": {"killed": 6}}, {}),
        ({"totals": {"killed": 6, "injured": 2}, "highs": {"killed": 9, "injured": 2}},
         {"killed": {"value": 6, "high": 9}}),
        ({"totals": {"trapped": 0}, "highs": {"trapped": 4, "rescued": 0}},
         {"trapped": {"value": 0, "high": 4}}),
    ],
)  # fmt: skip
def test_a_range_only_where_some_source_says_more(
    summary: dict[str, Any], ranges: dict[str, Any]
) -> None:
    assert disagreement(summary) == ranges


def test_a_leader_receives_their_team_themselves_and_teams_escalating_to_theirs() -> None:
    rules = load_rules(E2E)
    assert receivers_for(rules, "idleb-lead-1") == (["idleb-center", "idleb-lead-1"],
                                                    ["harim-center"])  # fmt: skip
    assert receivers_for(rules, "harim-lead-1") == (["harim-center", "harim-lead-1"], [])
