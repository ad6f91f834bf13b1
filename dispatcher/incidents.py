"""Incidents: one event, however many reports describe it. Pure.

Two observers reporting one strike are one strike. A report joins an incident when it names
it (`incident`), or when an incident of the same kind lies within `radius` metres and
`window` of it and has no report from the same source yet (one source reporting twice, with
two ids, has seen two events). Reports without coordinates join only by name: a district
alone is too coarse to tell two strikes apart, and a merge there would undercount.

An incident's count per field is the largest any live report gives, not the sum: observers
see the same dead, not different ones. It is confirmed once any live report confirms it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatcher.model import Casualties, Point, Report

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class MergeRule:
    radius_m: float = 500.0
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An open incident a new report might join."""

    id: str
    kind: str
    location: Point | None
    occurred_at: datetime
    sources: frozenset[str]


def distance_m(a: Point, b: Point) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bounding_box(p: Point, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) around `p`, for the store's coarse filter."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(0.01, math.cos(math.radians(p.lat)))
    return p.lat - dlat, p.lat + dlat, p.lon - dlon, p.lon + dlon


def pick(report: Report, candidates: Iterable[Candidate], rule: MergeRule) -> str | None:
    """The incident `report` belongs to among `candidates`, or None for a new one."""
    if report.location is None:
        return None
    best: tuple[float, float, str] | None = None
    for c in candidates:
        if c.kind != report.kind or c.location is None or report.source in c.sources:
            continue
        gap = abs((c.occurred_at - report.occurred_at).total_seconds())
        if gap > rule.window.total_seconds():
            continue
        d = distance_m(report.location, c.location)
        if d > rule.radius_m:
            continue
        key = (d, gap, c.id)
        if best is None or key < best:
            best = key
    return best[2] if best else None


@dataclass(frozen=True, slots=True)
class IncidentCount:
    casualties: Casualties
    confirmed: bool
    live_reports: int

    def as_list(self) -> list[int]:
        c = self.casualties
        return [c.killed, c.injured, c.trapped, c.rescued, int(self.confirmed)]


def count(live: Iterable[Report]) -> IncidentCount:
    """Merge the live reports of one incident: the largest figure per field."""
    reports = list(live)
    if not reports:
        return IncidentCount(Casualties(), False, 0)
    return IncidentCount(
        Casualties(
            killed=max(r.casualties.killed for r in reports),
            injured=max(r.casualties.injured for r in reports),
            trapped=max(r.casualties.trapped for r in reports),
            rescued=max(r.casualties.rescued for r in reports),
        ),
        confirmed=any(r.status == "confirmed" for r in reports),
        live_reports=len(reports),
    )
