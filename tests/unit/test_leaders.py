"""What a leader's app is told: where sources disagree."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.web.leaders import disagreement


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
