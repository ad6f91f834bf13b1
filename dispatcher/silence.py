"""Silences: operators mute alert groups by matcher and time window, as in Alertmanager.

Pure. A silenced group still takes reports and keeps its count; what it owes its leaders
(an update, a reminder, an escalation, its closing) is held until the silence ends, then
told with everything that happened meanwhile. A silence needs at least one matcher, so it
cannot mute everything by accident.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

MATCHERS = ("regions", "receivers", "routes", "kinds")


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    regions: frozenset[str]  # a group in one of these regions, or below one
    receivers: frozenset[str]  # team or leader ids
    routes: frozenset[str]  # route names
    kinds: frozenset[str]  # a group all of whose incidents are of these kinds
    starts_at: datetime
    ends_at: datetime
    author: str
    reason: str
    created_at: datetime

    def state(self, now: datetime) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(
        self,
        *,
        route_id: str,
        receiver: str,
        region_paths: Sequence[Sequence[str]],
        kinds: Iterable[str],
    ) -> bool:
        """Whether this silence covers a group: every matcher it has must hold. A group is
        in the silenced regions when each of its regions (its own, or its incidents') lies
        in one of them."""
        if self.routes and route_id not in self.routes:
            return False
        if self.receivers and receiver not in self.receivers:
            return False
        if self.regions and (
            not region_paths or not all(self.regions.intersection(p) for p in region_paths)
        ):
            return False
        group_kinds = set(kinds)
        return not self.kinds or (bool(group_kinds) and group_kinds <= self.kinds)


def first_muting(
    silences: Iterable[Silence],
    now: datetime,
    *,
    route_id: str,
    receiver: str,
    region_paths: Sequence[Sequence[str]],
    kinds: Iterable[str],
) -> Silence | None:
    """The active silence covering a group that ends last, or None."""
    kinds = tuple(kinds)
    muting = [
        s
        for s in silences
        if s.state(now) == "active"
        and s.mutes(route_id=route_id, receiver=receiver, region_paths=region_paths, kinds=kinds)
    ]
    return max(muting, key=lambda s: s.ends_at) if muting else None
