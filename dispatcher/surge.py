"""Surges: routes that match a rate of incidents instead of a report. Pure.

A surge route (`surge: {incidents: ">= 8", within: 30m}`) gathers the reports it matches into
alert groups like any route (per `group_by`, e.g. per governorate). What such a group tells
its receiver is decided here, from the time of each of the group's live incidents, the
rule, the group's surge state and `now`:

- **open**: the incidents of the last `within` reach the threshold, no surge alert is open;
- **repeat**: the surge alert is open, the rate holds and the count changed since the last
  push, and `group_interval` has passed since it;
- **subside**: the surge alert is open and the count fell below the threshold (the surge
  alert closes; one push says so);
- **close**: no surge alert open and no incident left in the window: the group closes
  without a push (the next report opens a new one, counted from zero);

and when to look again without a report: the moment the oldest counted incident leaves the
window (the count falls), or when `group_interval` allows a repeat. A later rise in the same
group opens a new surge alert, no sooner than `group_interval` after the subsided push.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

SURGE_LABEL = ("surge", "rate")  # marks a surge route's alert groups (their labels)


@dataclass(frozen=True, slots=True)
class SurgeRule:
    """`at_least` live incidents that occurred within the last `within`."""

    at_least: int
    within: timedelta

    def __str__(self) -> str:
        return f"incidents >= {self.at_least} within {window_text(self.within)}"


@dataclass(frozen=True, slots=True)
class SurgeState:
    """A surge group's state, as the store keeps it."""

    open_since: datetime | None = None  # the surge alert now open, if any
    told: int | None = None  # the count its last push told
    last_push_at: datetime | None = None  # the group's last push of any kind


Action = Literal["open", "repeat", "subside", "close"]


@dataclass(frozen=True, slots=True)
class SurgeDecision:
    action: Action | None
    count: int  # live incidents in the window now
    wakeup: datetime | None  # when to look again if no report comes (after the action)


def in_window(occurred: Iterable[datetime], within: timedelta, now: datetime) -> list[datetime]:
    """The times that count at `now`: an incident counts while it is younger than `within`
    (one exactly `within` old no longer does)."""
    start = now - within
    return [t for t in occurred if t > start]


def decide(
    rule: SurgeRule,
    occurred: Iterable[datetime],
    state: SurgeState,
    now: datetime,
    interval: timedelta,
) -> SurgeDecision:
    """What a surge group owes its receiver at `now`. `occurred`: when each of the group's
    live incidents occurred (retracted ones left out); `interval`: the route's
    group_interval, the least time between two pushes of the group (the subsided push is
    never held back)."""
    counted = in_window(occurred, rule.within, now)
    oldest, newest = (min(counted), max(counted)) if counted else (None, None)
    return decide_counted(rule, len(counted), oldest, newest, state, now, interval)


def decide_counted(
    rule: SurgeRule,
    n: int,
    oldest: datetime | None,
    newest: datetime | None,
    state: SurgeState,
    now: datetime,
    interval: timedelta,
) -> SurgeDecision:
    """`decide` from what the window holds at `now`: `n` live incidents, the earliest of
    which occurred at `oldest` and the latest at `newest` (None when there are none)."""
    holds = n >= rule.at_least
    drops = oldest + rule.within if oldest is not None else None  # the count next falls
    empties = newest + rule.within if newest is not None else None  # the window is empty
    allowed = state.last_push_at + interval if state.last_push_at is not None else None
    quiet = allowed is not None and now < allowed
    if state.open_since is None:
        if not holds:
            return SurgeDecision("close" if n == 0 else None, n, empties)
        if quiet:  # subsided a moment ago: no flapping open/subside at the threshold
            return SurgeDecision(None, n, _sooner(allowed, drops))
        return SurgeDecision("open", n, drops)
    if not holds:
        # The surge alert closes; the group keeps counting until its window is empty, so a
        # rise in the meantime is counted with the incidents still in it.
        return SurgeDecision("subside", n, empties or now)
    if n == state.told:
        return SurgeDecision(None, n, drops)
    if quiet:
        return SurgeDecision(None, n, _sooner(allowed, drops))
    return SurgeDecision("repeat", n, drops)


def _sooner(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


def after(decision: SurgeDecision, state: SurgeState, now: datetime) -> SurgeState:
    """The group's state once the decision's push is written."""
    if decision.action in ("open", "repeat"):
        since = state.open_since if decision.action == "repeat" else now
        return SurgeState(since, decision.count, now)
    if decision.action == "subside":
        return SurgeState(None, decision.count, now)
    return state


def places(
    regions: Iterable[str],
    path_of: Callable[[str], tuple[str, ...]],
    under: str | None,
) -> list[tuple[str, int]]:
    """Where the counted incidents are, most first (then by id): each incident's region
    (one per incident) taken one level below `under`, the group's region. An incident placed
    in `under` itself counts there; one outside it (or with no `under`) in its own region."""
    found: Counter[str] = Counter()
    for region in regions:
        path = path_of(region)
        if under is not None and under in path:
            i = path.index(under)
            found[path[i + 1] if i + 1 < len(path) else under] += 1
        else:
            found[region] += 1
    return sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))


def window_text(within: timedelta) -> str:
    """30m, 1h, 1h30, 45s: as the leaders' texts show a duration."""
    seconds = int(within.total_seconds())
    if seconds % 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h" + (f"{minutes % 60:02d}" if minutes % 60 else "")
