"""Domain values shared by every stage of the pipeline.

Plain immutable values (frozen dataclasses and named tuples): no I/O, no framework imports.
Intake produces a `Report`; the rules give `Region`, `Team` and `Leader`. What groups say
(`group.Summary`) and the store's rows (`store/rows.py`) are defined where they are made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, NamedTuple, get_args

Kind = Literal[
    "airstrike",
    "shelling",
    "barrel_bomb",
    "missile",
    "explosion",
    "building_collapse",
    "fire",
    "chemical",
    "other",
]
KINDS: tuple[str, ...] = get_args(Kind)

Status = Literal["unconfirmed", "confirmed", "retracted"]
STATUSES: tuple[str, ...] = get_args(Status)

Locale = Literal["ar", "en"]
LOCALES: tuple[str, ...] = get_args(Locale)

Platform = Literal["android", "ios"]

# The region a report is placed in when neither its code nor its coordinates place it.
UNASSIGNED = "unassigned"


class Casualties(NamedTuple):
    """Counts of one report or incident. Adding two adds each count (not tuple joining)."""

    killed: int = 0
    injured: int = 0
    trapped: int = 0
    rescued: int = 0

    def __add__(self, other: Casualties) -> Casualties:  # type: ignore[override]  # counts add up
        return Casualties(
            self.killed + other.killed,
            self.injured + other.injured,
            self.trapped + other.trapped,
            self.rescued + other.rescued,
        )


class Point(NamedTuple):
    lat: float
    lon: float


class Report(NamedTuple):
    """One report as the pipeline sees it, after validation and placement.

    `region` is the region the report was placed in (a rules region id, or UNASSIGNED);
    `given_region` is what the reporter sent, if anything. A named tuple, not a dataclass:
    a surge builds tens of thousands a second, and a frozen dataclass costs several times
    as much to build (docs/performance.md, "Figures behind the code").
    """

    source: str
    id: str
    kind: str
    occurred_at: datetime
    region: str
    casualties: Casualties = Casualties()
    status: str = "unconfirmed"
    revision: int = 1
    location: Point | None = None
    given_region: str | None = None
    notes: str | None = None
    incident: str | None = None  # named by the reporter, or assigned when stored
    tier: str = "other"  # the source's trust tier when the report was accepted (counting)
    site: str | None = None  # the part of the incident it counts (one building of a strike)
    received_at: datetime | None = None  # when stored (set on reports read from the store)


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    name: str
    name_ar: str
    parent: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Leader:
    id: str
    name: str
    locale: str
    team: str
    fallback: str | None = None  # a channel (push.webhooks) when their phones cannot be reached


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    leaders: tuple[Leader, ...] = field(default_factory=tuple)
    escalate_after: timedelta | None = None  # unacknowledged this long: tell escalate_to
    escalate_to: str | None = None
    fallback: str | None = None  # its leaders' fallback channel, unless a leader names one
