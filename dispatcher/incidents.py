"""Incidents: one event, however many reports describe it. Pure.

Two observers reporting one strike are one strike. A report joins an incident when it names
it (`incident`), or else the nearest incident one of the organisation's own teams anchors
(an `own`-tier report joined it) within `anchor_radius_m` and `window`, or else the nearest
incident within `radius_m` and `window`; in each case of the same kind family
(`counting.family`: an airstrike and a missile may be one strike) and with no report from
the same source yet (one source reporting twice, with two ids, has seen two events).
Observers state where they stood, often hundreds of metres from the strike; a team at the
site is where it happened, so reports gather round it. Reports without coordinates join
only by name: a district alone is too coarse to tell two strikes apart, and a merge there
would undercount.

How an incident's reports are counted is `dispatcher.counting`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from dispatcher.counting import family
from dispatcher.model import Point, Report

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class MergeRule:
    radius_m: float = 500.0
    window: timedelta = timedelta(minutes=15)
    anchor_radius_m: float = 1000.0  # round an incident one of our teams reports

    @property
    def reach_m(self) -> float:
        """The farthest an incident a report may join can lie."""
        return max(self.radius_m, self.anchor_radius_m)


class Candidate(NamedTuple):
    """An open incident a new report might join: its kind family, the sources whose reports
    joined it (sorted), and whether one of them is of the `own` tier (an anchor).

    A tuple of plain values, which the cyclic garbage collector stops looking at once it has
    seen it: the writer holds hundreds of thousands of these through a surge.
    """

    id: str
    family: str
    location: Point | None
    occurred_at: datetime
    sources: tuple[str, ...]
    anchored: bool = False


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
    """The incident `report` belongs to among `candidates`, or None for a new one: the
    nearest anchored one within the anchor radius, else the nearest within the radius."""
    if report.location is None:
        return None
    kin = family(report.kind)
    best: tuple[float, float, str] | None = None
    anchor: tuple[float, float, str] | None = None
    for c in candidates:
        if c.family != kin or c.location is None or report.source in c.sources:
            continue
        gap = abs((c.occurred_at - report.occurred_at).total_seconds())
        if gap > rule.window.total_seconds():
            continue
        d = distance_m(report.location, c.location)
        key = (d, gap, c.id)
        if c.anchored and d <= rule.anchor_radius_m and (anchor is None or key < anchor):
            anchor = key
        if d <= rule.radius_m and (best is None or key < best):
            best = key
    found = anchor or best
    return found[2] if found else None


def absorbs(
    report: Report,
    into: str,
    into_sources: Iterable[str],
    candidates: Iterable[Candidate],
    rule: MergeRule,
) -> list[str]:
    """The incidents an own-tier `report`, which joined or made `into`, gathers into it:
    those no team anchors, of its kind family, within the anchor radius of it and its
    window, nearest first, skipping any that shares a source with what `into` holds by
    then (one source reporting twice has seen two events). Observers reporting before the
    team made them apart; the team at the site says they are one."""
    at = report.location
    if at is None:
        return []
    kin = family(report.kind)
    near = []
    for c in candidates:
        if c.id == into or c.anchored or c.family != kin or c.location is None:
            continue
        gap = abs((c.occurred_at - report.occurred_at).total_seconds())
        if gap > rule.window.total_seconds():
            continue
        d = distance_m(at, c.location)
        if d <= rule.anchor_radius_m:
            near.append((d, gap, c.id, c.sources))
    held = set(into_sources) | {report.source}
    out = []
    for _, _, cid, sources in sorted(near):
        if held.isdisjoint(sources) and cid not in out:
            out.append(cid)
            held.update(sources)
    return out


# An incident as the index holds it: (id, kind family, lat, lon, occurred_at, sources, the
# time as POSIX seconds, its cell, anchored). A plain tuple of plain values, which the
# cyclic garbage collector stops looking at once it has seen it (it never does so for named
# tuples): the writer holds hundreds of thousands of these through a surge, and full
# collections walked every one again and again. The time is kept twice because comparing
# floats costs a fraction of comparing aware datetimes, and lookups compare it for every
# incident in a cell.
_Entry = tuple[str, str, float, float, datetime, tuple[str, ...], float, int, bool]


def _candidate(entry: _Entry) -> Candidate:
    return Candidate(entry[0], entry[1], Point(entry[2], entry[3]), entry[4], entry[5], entry[8])


class IncidentIndex:
    """Incidents with coordinates by kind family, place and time: the merge rule's lookup,
    in memory.

    Incidents fall in cells one merge diameter wide and two merge windows long, so those a
    report may join lie in the few cells around its place and time (a few more for the
    anchored ones, farther away), however many incidents a surge piles up in one town over
    the hours. The index answers for reports whose merge
    window starts at or after `since`; the store fills it from the incidents table and keeps
    it equal to it.
    """

    # A cell's number: ((row * _ROW) + column) * _SLOTS + its time slot. Were two cells to
    # share one (far outside any map, or thirty years apart) a lookup would only see more.
    _ROW = 1 << 24
    _SLOTS = 1 << 20

    def __init__(self, rule: MergeRule, *, since: datetime) -> None:
        self.rule = rule
        self.since = since
        self._dlat = math.degrees(rule.radius_m / EARTH_RADIUS_M)
        self._reach = math.degrees(rule.reach_m / EARTH_RADIUS_M)
        self._cell = max(2 * self._dlat, 1e-6)
        self._window_s = rule.window.total_seconds()
        self._slot = max(2 * self._window_s, 1.0)
        # family -> cell -> incidents. A cell is a tuple, rebuilt when it changes: it holds a
        # few incidents at most. The anchored ones again in `_anchors`, looked in farther.
        self._cells: dict[str, dict[int, tuple[_Entry, ...]]] = {}
        self._anchors: dict[str, dict[int, tuple[_Entry, ...]]] = {}
        self._by_id: dict[str, _Entry] = {}
        self._one_source: dict[str, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def __contains__(self, incident_id: object) -> bool:
        return incident_id in self._by_id

    def __iter__(self) -> Iterator[Candidate]:
        return iter([_candidate(e) for e in self._by_id.values()])

    def covers(self, report: Report) -> bool:
        """Whether every incident `report` might join is held here."""
        return report.occurred_at - self.rule.window >= self.since

    def _key(self, lat: float, lon: float, ts: float) -> int:
        place = math.floor(lat / self._cell) * self._ROW + math.floor(lon / self._cell)
        return place * self._SLOTS + math.floor(ts / self._slot) % self._SLOTS

    def _sources(self, sources: Iterable[str]) -> tuple[str, ...]:
        if type(sources) is tuple and len(sources) == 1:  # the common case, made fast
            return self._one_source.setdefault(sources[0], sources)
        found = tuple(sorted(set(sources)))
        if len(found) == 1:  # most incidents have one source: share the tuple
            return self._one_source.setdefault(found[0], found)
        return found

    def add(
        self,
        incident_id: str,
        kind: str,
        at: Point,
        occurred_at: datetime,
        sources: Iterable[str] = (),
        anchored: bool = False,
    ) -> None:
        """Hold an incident (again: its place, time and sources are replaced); one that
        occurred before `since` is not held, as no report the index answers for can join it.
        `kind`: of any of its reports (the index keeps its family)."""
        self.remove(incident_id)
        if occurred_at < self.since:
            return
        ts = occurred_at.timestamp()
        key = self._key(at.lat, at.lon, ts)
        kin = family(kind)
        entry = (incident_id, kin, at.lat, at.lon, occurred_at, self._sources(sources), ts, key,
                 anchored)  # fmt: skip
        self._by_id[incident_id] = entry
        self._put(entry)

    def _put(self, entry: _Entry) -> None:
        for held in (self._cells, self._anchors) if entry[8] else (self._cells,):
            cells = held.setdefault(entry[1], {})
            cells[entry[7]] = (*cells.get(entry[7], ()), entry)

    def _drop(self, entry: _Entry) -> None:
        for held in (self._cells, self._anchors) if entry[8] else (self._cells,):
            cells = held[entry[1]]
            rest = tuple(e for e in cells[entry[7]] if e[0] != entry[0])
            if rest:
                cells[entry[7]] = rest
            else:
                del cells[entry[7]]

    def join(self, incident_id: str, source: str, *, anchors: bool = False) -> None:
        """A report of `source` joined the incident (if held); `anchors`: an own-tier one."""
        entry = self._by_id.get(incident_id)
        if entry is None or (source in entry[5] and (entry[8] or not anchors)):
            return
        joined: _Entry = (*entry[:5], self._sources((*entry[5], source)), entry[6], entry[7],
                          entry[8] or anchors)  # fmt: skip
        self._by_id[incident_id] = joined
        self._drop(entry)
        self._put(joined)

    def remove(self, incident_id: str) -> None:
        entry = self._by_id.pop(incident_id, None)
        if entry is not None:
            self._drop(entry)

    def candidates(self, report: Report) -> list[Candidate]:
        """The incidents of the report's kind family in its time window, in the box round its
        merge circle or (anchored ones) its anchor circle: a superset of what `pick`
        accepts; `pick` decides."""
        at = report.location
        kin = family(report.kind)
        cells = self._cells.get(kin)
        if at is None or cells is None:
            return []
        lat, lon = at.lat, at.lon
        dlat, c, row, slots, slot = self._dlat, self._cell, self._ROW, self._SLOTS, self._slot
        # The circle is widest in longitude at its edge nearer the pole.
        dlon = dlat / max(0.01, math.cos(math.radians(min(89.9, abs(lat) + dlat))))
        # Seconds as floats carry rounding: the window is widened by a millisecond, so that
        # an incident exactly at its edge is still found (`pick` decides on the datetimes).
        ts = report.occurred_at.timestamp()
        t0, t1 = ts - self._window_s - 1e-3, ts + self._window_s + 1e-3
        # The window (a slot long, and that millisecond) touches two slots, rarely three.
        first, last = math.floor(t0 / slot) % slots, math.floor(t1 / slot) % slots
        if first == last:
            times: tuple[int, ...] = (first,)
        else:  # the slot count may come round in between
            times = tuple((first + k) % slots for k in range((last - first) % slots + 1))
        source = report.source
        lat0, lat1, lon0, lon1 = lat - dlat, lat + dlat, lon - dlon, lon + dlon
        j0, j1 = math.floor(lon0 / c), math.floor(lon1 / c) + 1
        get = cells.get
        found = []
        for i in range(math.floor(lat0 / c) * row, (math.floor(lat1 / c) + 1) * row, row):
            for j in range((i + j0) * slots, (i + j1) * slots, slots):
                for t in times:
                    cell = get(j + t)
                    if cell is None:
                        continue
                    for e in cell:
                        if (
                            lat0 <= e[2] <= lat1
                            and lon0 <= e[3] <= lon1
                            and t0 <= e[6] <= t1
                            and source not in e[5]
                        ):
                            found.append(_candidate(e))
        anchors = self._anchors.get(kin)
        if not anchors:
            return found
        # Anchored incidents beyond the merge circle's box, within the anchor circle's: held
        # apart as well, so that a lookup where no team reported costs what it did.
        reach = self._reach
        rlon = reach / max(0.01, math.cos(math.radians(min(89.9, abs(lat) + reach))))
        far0, far1, flon0, flon1 = lat - reach, lat + reach, lon - rlon, lon + rlon
        j0, j1 = math.floor(flon0 / c), math.floor(flon1 / c) + 1
        for i in range(math.floor(far0 / c) * row, (math.floor(far1 / c) + 1) * row, row):
            for j in range((i + j0) * slots, (i + j1) * slots, slots):
                for t in times:
                    for e in anchors.get(j + t, ()):
                        if (
                            far0 <= e[2] <= far1
                            and flon0 <= e[3] <= flon1
                            and t0 <= e[6] <= t1
                            and source not in e[5]
                            and not (lat0 <= e[2] <= lat1 and lon0 <= e[3] <= lon1)
                        ):
                            found.append(_candidate(e))
        return found

    def around(self, report: Report) -> list[Candidate]:
        """Every incident of the report's kind family in its time window and the box round
        its anchor circle, whatever their sources (`absorbs` decides)."""
        at = report.location
        cells = self._cells.get(family(report.kind))
        if at is None or cells is None:
            return []
        lat, lon, reach, c = at.lat, at.lon, self._reach, self._cell
        rlon = reach / max(0.01, math.cos(math.radians(min(89.9, abs(lat) + reach))))
        ts = report.occurred_at.timestamp()
        t0, t1 = ts - self._window_s - 1e-3, ts + self._window_s + 1e-3
        slot, slots, row = self._slot, self._SLOTS, self._ROW
        first, last = math.floor(t0 / slot), math.floor(t1 / slot)
        times = {t % slots for t in range(first, last + 1)}
        far0, far1, flon0, flon1 = lat - reach, lat + reach, lon - rlon, lon + rlon
        j0, j1 = math.floor(flon0 / c), math.floor(flon1 / c) + 1
        found = []
        for i in range(math.floor(far0 / c) * row, (math.floor(far1 / c) + 1) * row, row):
            for j in range((i + j0) * slots, (i + j1) * slots, slots):
                for t in times:
                    for e in cells.get(j + t, ()):
                        if t0 <= e[6] <= t1 and far0 <= e[2] <= far1 and flon0 <= e[3] <= flon1:
                            found.append(_candidate(e))
        return found

    def sources_of(self, incident_id: str) -> tuple[str, ...] | None:
        """The sources of a held incident (None if not held)."""
        entry = self._by_id.get(incident_id)
        return entry[5] if entry is not None else None

    def forget_before(self, since: datetime) -> int:
        """Let go of incidents that occurred before `since`; the index then answers only
        for reports whose window starts at or after it. Returns how many were let go."""
        old = [e[0] for e in self._by_id.values() if e[4] < since]
        for incident_id in old:
            self.remove(incident_id)
        self.since = max(self.since, since)
        return len(old)
