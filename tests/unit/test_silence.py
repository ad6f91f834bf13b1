"""Which groups a silence covers, and when (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.silence import Silence, first_muting

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
HARIM = ("SY", "SY07", "SY0703")
IDLEB = ("SY", "SY07")
ALEPPO = ("SY", "SY02")


def silence(ends: timedelta = H, **matchers: frozenset[str]) -> Silence:
    fields = {"regions": frozenset(), "receivers": frozenset(), "routes": frozenset(),
              "kinds": frozenset(), **matchers}  # fmt: skip
    return Silence(id=f"s{ends}", starts_at=T0, ends_at=T0 + ends, author="a", reason="r",
                   created_at=T0, **fields)  # fmt: skip


@pytest.mark.parametrize(
    ("s", "paths", "kinds", "receiver", "muted", "why"),
    [
        (silence(regions=frozenset({"SY07"})), [HARIM], ["airstrike"], "t", True,
         "a district is inside its governorate"),
        (silence(regions=frozenset({"SY0703"})), [IDLEB], ["airstrike"], "t", False,
         "the governorate is not inside its district"),
        (silence(regions=frozenset({"SY07"})), [HARIM, ALEPPO], ["airstrike"], "t", False,
         "every region of the group must be silenced"),
        (silence(kinds=frozenset({"fire"})), [HARIM], ["fire", "airstrike"], "t", False,
         "a group with an airstrike in it is not a fire-only group"),
        (silence(kinds=frozenset({"fire"})), [HARIM], ["fire"], "t", True, "fire only"),
        (silence(receivers=frozenset({"harim"}), regions=frozenset({"SY07"})), [HARIM], [],
         "idleb", False, "every matcher must hold"),
        (silence(routes=frozenset({"root"})), [], [], "t", True, "by route alone"),
    ],
)  # fmt: skip
def test_what_a_silence_covers(
    s: Silence, paths: list[tuple[str, ...]], kinds: list[str], receiver: str, muted: bool,
    why: str,
) -> None:  # fmt: skip
    found = first_muting([s], T0, route_id="root", receiver=receiver, region_paths=paths,
                         kinds=kinds)  # fmt: skip
    assert (found is not None) == muted, why


def test_a_silence_works_only_inside_its_window_and_the_longest_wins() -> None:
    short, long = silence(H, routes=frozenset({"root"})), silence(3 * H, routes=frozenset({"root"}))
    args = {"route_id": "root", "receiver": "t", "region_paths": [], "kinds": []}
    assert first_muting([short, long], T0 + H / 2, **args) is long  # type: ignore[arg-type]
    assert first_muting([short], T0 - H, **args) is None, "not started"  # type: ignore[arg-type]
    assert first_muting([short], T0 + H, **args) is None, "ended"  # type: ignore[arg-type]
    assert short.state(T0 - H) == "pending"
    assert short.state(T0 + H) == "expired"
