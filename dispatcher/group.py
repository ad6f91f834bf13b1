"""Alert groups: when a group's next update is due, and what it says in numbers.

Pure decisions: plain values in, `now` passed in, no I/O. The store keeps the group's
timer; a due group's flush (`flush.py`) asks `due_action` what it owes and `next_wakeup`
when to look again, and renders a `Summary` in every language.

Longer than 400 lines: `GroupTally` (incremental counting) and `summary_of` share one
notion of a group's state; split apart, the invariant between them would span two files.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right, insort
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from dispatcher.counting import (
    COUNT_FIELDS,
    FieldCount,
    IncidentCount,
    changed,
    count,
    single,
)
from dispatcher.model import Casualties, Report


class Timing(NamedTuple):
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    close_after: timedelta = timedelta(hours=1)
    escalate_after: timedelta | None = None  # the receiving team's, if it escalates


@dataclass(frozen=True, slots=True)
class GroupTarget:
    """An alert group a new report joins (created if not open yet)."""

    route_id: str
    labels: tuple[tuple[str, str], ...]
    receiver: str
    timing: Timing

    @property
    def group_key(self) -> str:
        """The group's labels as the store keys it."""
        return json.dumps(list(self.labels), separators=(",", ":"), ensure_ascii=False)


def next_flush_after_report(
    *,
    now: datetime,
    timing: Timing,
    pending: bool,
    next_flush_at: datetime | None,
    last_flush_at: datetime | None,
) -> datetime:
    """When an open group that just took a report should next send an update.

    A group waits `group_wait` before its first update, so the first few reports of a strike
    arrive together; after that it sends at most one update per `group_interval`.
    """
    if last_flush_at is None:
        # Still in its first wait: the first update is already scheduled. (A group that has
        # sent nothing yet and is not pending, e.g. a surge group below its threshold, waits
        # group_wait, not for the timer it sleeps on.)
        if pending and next_flush_at is not None:
            return next_flush_at
        return now + timing.group_wait
    if pending and next_flush_at is not None:
        return next_flush_at
    return max(now, last_flush_at + timing.group_interval)


def first_flush(now: datetime, timing: Timing) -> datetime:
    return now + timing.group_wait


def is_due(*, pending: bool, next_flush_at: datetime | None, now: datetime) -> bool:
    return pending and next_flush_at is not None and next_flush_at <= now


@dataclass(frozen=True, slots=True)
class Life:
    """What a group's timers depend on, as the store keeps it."""

    pending: bool  # a change not yet told
    next_update_at: datetime | None  # when that change is due (pending groups)
    last_flush_at: datetime | None  # the last push of any kind
    last_report_at: datetime | None
    repeat_interval: timedelta | None
    close_after: timedelta | None
    acked: bool
    opened_at: datetime | None = None
    escalate_after: timedelta | None = None
    escalated: bool = False

    @property
    def escalates_at(self) -> datetime | None:
        if self.acked or self.escalated or self.escalate_after is None or self.opened_at is None:
            return None
        return self.opened_at + self.escalate_after


Action = Literal["update", "escalate", "remind", "close"]


def due_action(life: Life, now: datetime) -> Action | None:
    """What a group owes its leaders now: an update with what changed; a reminder after
    `repeat_interval` without one while nobody acknowledged; or, after `close_after` without
    a report, its closing summary. A change is told before the group closes. If nobody has
    acknowledged the group `escalate_after` after it opened, another team is told, once."""
    if life.pending:
        due = life.next_update_at is not None and life.next_update_at <= now
        return "update" if due else None
    escalates_at = life.escalates_at
    if escalates_at is not None and escalates_at <= now:
        return "escalate"
    quiet_since, close_after = life.last_report_at, life.close_after
    if quiet_since is not None and close_after is not None and quiet_since + close_after <= now:
        return "close"
    last, every = life.last_flush_at, life.repeat_interval
    if not life.acked and last is not None and every is not None and last + every <= now:
        return "remind"
    return None


def next_wakeup(life: Life) -> datetime | None:
    """When the group next needs looking at (the store's `next_flush_at`)."""
    if life.pending:
        return life.next_update_at
    times = []
    if life.last_report_at is not None and life.close_after is not None:
        times.append(life.last_report_at + life.close_after)
    if not life.acked and life.last_flush_at is not None and life.repeat_interval is not None:
        times.append(life.last_flush_at + life.repeat_interval)
    if life.escalates_at is not None:
        times.append(life.escalates_at)
    return min(times) if times else None


def report_key(report: Report) -> str:
    return f"{report.source}/{report.id}"


@dataclass(frozen=True, slots=True)
class Summary:
    """What one update of a group says: what changed since the last update, and the totals.

    Counts are per incident (the figures in force, see `counting`), summed over the group's
    incidents; `highs` sums per incident the highest figure in force or reported by any
    source, so the text can say what others report beyond the figures. `state` is what the
    next update compares against.
    """

    totals: Casualties
    incidents: int  # live incidents in the group
    live_reports: int
    new: tuple[str, ...]  # incidents first counted in this update
    revised: tuple[str, ...]  # incidents whose numbers changed since the last update
    retracted: tuple[str, ...]  # incidents counted last time, with no live report now
    confirmed: tuple[str, ...]  # incidents confirmed since the last update
    kinds: tuple[tuple[str, int], ...]  # live incidents per kind, most first
    regions: tuple[str, ...]  # regions of the live incidents, most first
    since: datetime | None  # time of the previous update, if any
    state: Mapping[str, list[int]] = field(default_factory=dict)
    # For revised incidents, each count that changed: (incident, field, before, now).
    revisions: tuple[tuple[str, str, int, int], ...] = ()
    # Which of a GroupTally's changes this summary covers (see GroupTally.told).
    told: int = field(default=0, compare=False)
    highs: Casualties = field(default_factory=Casualties)

    @property
    def changed(self) -> bool:
        return bool(self.new or self.revised or self.retracted or self.confirmed)

    @property
    def changed_incidents(self) -> tuple[str, ...]:
        seen = dict.fromkeys(self.new + self.revised + self.confirmed + self.retracted)
        return tuple(seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "totals": {
                "killed": self.totals.killed,
                "injured": self.totals.injured,
                "trapped": self.totals.trapped,
                "rescued": self.totals.rescued,
            },
            "highs": dict(zip(COUNT_FIELDS, self.highs, strict=True)),
            "incidents": self.incidents,
            "live_reports": self.live_reports,
            "new": list(self.new),
            "revised": list(self.revised),
            "retracted": list(self.retracted),
            "confirmed": list(self.confirmed),
            "kinds": [list(k) for k in self.kinds],
            "regions": list(self.regions),
            "since": self.since.isoformat() if self.since else None,
            "state": {k: list(v) for k, v in self.state.items()},
            "revisions": [list(r) for r in self.revisions],
        }


def latest_revisions(reports: Iterable[Report]) -> list[Report]:
    """The live revision of each report: the highest revision per (source, id)."""
    best: dict[str, Report] = {}
    for r in reports:
        key = report_key(r)
        if key not in best or r.revision > best[key].revision:
            best[key] = r
    return sorted(best.values(), key=lambda r: (r.occurred_at, report_key(r)))


def count_incident(reports: Iterable[Report]) -> tuple[list[Report], IncidentCount]:
    """An incident's figures in force from every revision of its reports: the latest
    revision of each, counted in the order received (a present state such as `trapped`
    takes the latest), retracted ones left out (docs/counting.md). With the latest
    revisions, for showing them."""
    latest = latest_revisions(reports)
    received = sorted(latest, key=lambda r: (r.received_at is None, r.received_at))
    return latest, count(r for r in received if r.status != "retracted")


@dataclass(frozen=True, slots=True)
class Tally:
    """One incident of a group, as its latest revisions count it."""

    # Its earliest report (occurred_at as a POSIX timestamp, key): the order shown. Sorting
    # tens of thousands of aware datetimes is slow (docs/performance.md): each comparison
    # asks both for their offsets.
    first: tuple[float, str]
    count: IncidentCount | None  # None when every report of it is retracted
    kind: str = ""  # the incident's (of its highest tier's latest live report)
    region: str = ""  # the region most of its live reports were placed in


def _tally(members: Sequence[Report]) -> Tally:
    """`members`: the latest revision of each report of one incident, in (time, key) order."""
    first = (members[0].occurred_at.timestamp(), report_key(members[0]))
    alive = [r for r in members if r.status != "retracted"]
    if not alive:
        return Tally(first, None)
    if len(alive) == 1:  # most incidents: a surge's tally counts tens of thousands of these
        r = alive[0]
        return Tally(first, single(r), r.kind, r.region)
    regions: dict[str, int] = {}
    for r in alive:
        regions[r.region] = regions.get(r.region, 0) + 1
    region = max(regions, key=regions.__getitem__)  # the first placed, of those most often
    counted = count(alive)
    return Tally(first, counted, counted.kind, region)


def _incident_of(report: Report) -> str:
    return report.incident or f"report:{report_key(report)}"


def summarize(
    reports: Iterable[Report],
    *,
    previous: Mapping[str, Sequence[int]],
    previous_at: datetime | None,
) -> Summary:
    """Sum up a group's reports against the state its previous update recorded.

    Each report counts at its latest revision only, so a correction revises a number and
    never adds twice; a retracted report counts for nothing; reports of one incident count
    once, at the largest figure any of them gives.
    """
    by_incident: dict[str, list[Report]] = {}
    for r in latest_revisions(reports):
        by_incident.setdefault(_incident_of(r), []).append(r)
    tallies = {inc: _tally(members) for inc, members in by_incident.items()}
    return summary_of(tallies, previous=previous, previous_at=previous_at)


class Counted(NamedTuple):
    """Which of a group's stored report rows a tally holds, in three numbers: how many, the
    sum of their row ids and the highest. The store reads only the rows above `top` when
    the group's rows up to it still add up to the first two (on PostgreSQL a lower row id
    can commit after a higher one; then, or if a row is gone, all of them are read again)."""

    rows: int
    pk_sum: int
    top: int


class GroupTally:
    """`summarize` for a group that keeps growing: reports are added as they join (each
    stored report row once: rows are never changed), and only the incidents they touch are
    counted again. A flush of a group of thousands of reports then reads and counts only
    what joined since the last flush. `summary` equals `summarize` of every report added.

    Told which update it was summed up for (`told`; a new tally knows the group's first
    update comes after none), the tally also compares only the incidents touched since
    against what that update said, and keeps the totals, kinds and regions up to date as
    incidents change: a digest of a group of tens of thousands of incidents costs what
    changed, not the whole group.

    A group under a steady stream stays open for hours, so the tally keeps reports only as
    long as they may still change what it counts cheaply: `settle` lets go of the reports of
    incidents nothing has touched for a while (and of the row ids added before then),
    keeping each incident's count. Rows that touch what it let go of (a correction of an old
    report, a late report joining an old incident) are not added (`add` says False): the
    group is then counted whole again, so every count stays exact."""

    def __init__(self) -> None:
        self.seen: set[int] = set()  # stored report rows (pk) added and not let go of
        self._rows = 0
        self._pk_sum = 0
        self._top = 0
        self._floor = 0  # the highest row id let go of: a row at or below it is not known
        self._let_go = 0  # reports let go of
        # Row ids by when they were added; incidents by when a report last touched them (when
        # it was stored), about oldest first.
        self._added: deque[tuple[float, list[int]]] = deque()
        self._touched_at: OrderedDict[str, float] = OrderedDict()
        self._shared: dict[Any, Any] = {}  # values settled incidents' tallies share
        self._latest: dict[str, Report] = {}  # report key -> latest revision (held ones)
        self._members: dict[str, dict[str, Report]] = {}  # incident -> key -> report
        self._tallies: dict[str, Tally] = {}
        # The live incidents' counts and what they add up to, kept as incidents change.
        self._state: dict[str, list[int]] = {}
        self._totals = [0, 0, 0, 0]
        self._highs = [0, 0, 0, 0]
        self._live_reports = 0
        self._kinds: Counter[str] = Counter()
        self._regions: Counter[str] = Counter()
        # When each live incident occurred (Tally.first[0]), sorted: a surge's count in its
        # window is then two bisections, not a walk through tens of thousands of incidents
        # at every tick. New incidents are mostly the newest, so insertions are at the end.
        self._firsts: list[float] = []
        # Incidents touched since the update told, by the add() that touched them last.
        self._touched: dict[str, int] = {}
        self._adds = 0
        # The state update `told_seq` said: a new tally knows that a group's update 0, the
        # one before its first, said nothing (every incident it counts is touched since).
        self._told: Mapping[str, list[int]] = {}
        self.told_seq = 0
        # The group's `recount` when its reports were counted: raised when an incident of
        # theirs is merged into another, which a report already counted here cannot show.
        self.recount = 0

    def add(self, rows: Iterable[tuple[int, Report]], at: float = 0.0) -> bool:
        """Count stored report rows (row id, report) in, read at `at` (a POSIX time, for
        the rows without a `received_at`). False, with nothing added, if they touch reports
        the tally let go of: the group must then be counted whole (a new tally)."""
        rows = rows if isinstance(rows, list) else list(rows)
        if (self._let_go or self._floor) and not self._holds_what(rows):
            return False
        # In the order reports joined, mostly the order shown: sorting it is then cheap.
        touched: dict[str, datetime | None] = {}  # incident -> when its report was stored
        added: list[int] = []
        for pk, report in rows:
            if pk in self.seen:
                continue
            self.seen.add(pk)
            added.append(pk)
            self._rows += 1
            self._pk_sum += pk
            self._top = max(self._top, pk)
            key = report_key(report)
            old = self._latest.get(key)
            if old is not None and old.revision >= report.revision:
                continue
            self._latest[key] = report
            if old is not None:
                moved_from = _incident_of(old)
                self._members[moved_from].pop(key, None)
                touched[moved_from] = report.received_at
            incident = _incident_of(report)
            self._members.setdefault(incident, {})[key] = report
            touched[incident] = report.received_at
        if added:
            self._added.append((at, added))
        if not touched:
            return True
        self._adds += 1
        touched_at = self._touched_at
        stamps: list[tuple[float, str]] = []
        for incident, stored_at in touched.items():
            self._touched[incident] = self._adds
            self._count_in(self._tallies.get(incident), -1)
            members = self._members.get(incident)
            if not members:
                self._members.pop(incident, None)
                self._tallies.pop(incident, None)
                self._state.pop(incident, None)
                touched_at.pop(incident, None)
                continue
            stamps.append((at if stored_at is None else stored_at.timestamp(), incident))
            ordered = list(members.values())
            if len(ordered) > 1:
                ordered.sort(key=lambda r: (r.occurred_at, report_key(r)))
            tally = self._tallies[incident] = _tally(ordered)
            self._count_in(tally)
            if tally.count is None:
                self._state.pop(incident, None)
            else:
                self._state[incident] = tally.count.as_list()
        # Oldest first (a whole group's rows touch an old incident with a new correction).
        stamps.sort()
        for stamp, incident in stamps:
            touched_at[incident] = stamp
            touched_at.move_to_end(incident)
        return True

    def _holds_what(self, rows: list[tuple[int, Report]]) -> bool:
        """Whether adding `rows` needs nothing the tally let go of: no row it may have
        added before (at or below the row ids let go of), no new revision of a report it let
        go of, no report of an incident whose reports it let go of."""
        keys: set[str] = set()
        for pk, report in rows:
            if pk in self.seen:
                continue
            if pk <= self._floor:
                return False
            key = report_key(report)
            # A later revision of a report not held: maybe one let go of (or one that moved
            # here from another group: counting whole is then only slower).
            if report.revision > 1 and key not in self._latest and key not in keys:
                return False
            incident = _incident_of(report)
            if incident in self._tallies and incident not in self._members:
                return False
            keys.add(key)
        return True

    def settle(self, before: float) -> int:
        """Let go of the reports of the incidents whose latest report was stored before
        `before` (a POSIX time; their counts stay) and of the row ids added before it. How
        many reports."""
        let_go = 0
        touched_at = self._touched_at
        while touched_at:
            incident, at = next(iter(touched_at.items()))
            if at >= before:
                break
            del touched_at[incident]
            for key in self._members.pop(incident, {}):
                del self._latest[key]
                let_go += 1
            tally = self._tallies.get(incident)
            if tally is not None:
                self._tallies[incident] = self._slim(tally)
        added = self._added
        while added and added[0][0] < before:
            _, pks = added.popleft()
            self.seen.difference_update(pks)
            self._floor = max(self._floor, max(pks))
        self._let_go += let_go
        return let_go

    def _slim(self, tally: Tally) -> Tally:
        """An incident's tally as a summary reads it once its reports are let go of: of each
        count the figure and the highest reported, values shared with other incidents'."""
        shared = self._shared
        kind, region, c = shared.setdefault(tally.kind, tally.kind), tally.region, tally.count
        region = shared.setdefault(region, region)
        if c is not None:
            fields = tuple(FieldCount(f.value, high=max(f.value, f.high)) for f in c.fields)
            c_kind = shared.setdefault(c.kind, c.kind)
            c = IncidentCount(c.casualties, c.confirmed, c.live_reports, c_kind, fields)
            c = shared.setdefault(c, c)
        return Tally(tally.first, c, kind, region)

    @property
    def held(self) -> int:
        """Reports the tally holds (their latest revisions)."""
        return len(self._latest)

    def _count_in(self, tally: Tally | None, sign: int = 1) -> None:
        if tally is None or tally.count is None:
            return
        c = tally.count
        totals = self._totals
        totals[0] += sign * c.casualties.killed
        totals[1] += sign * c.casualties.injured
        totals[2] += sign * c.casualties.trapped
        totals[3] += sign * c.casualties.rescued
        highs = self._highs
        for n, high in enumerate(c.highs):
            highs[n] += sign * high
        self._live_reports += sign * c.live_reports
        if sign > 0:
            insort(self._firsts, tally.first[0])
        else:
            del self._firsts[bisect_left(self._firsts, tally.first[0])]
        self._kinds[tally.kind] += sign
        self._regions[tally.region] += sign
        if sign < 0:
            for counter, value in ((self._kinds, tally.kind), (self._regions, tally.region)):
                if counter[value] == 0:
                    del counter[value]

    @property
    def counted(self) -> Counted:
        return Counted(rows=self._rows, pk_sum=self._pk_sum, top=self._top)

    def summary(
        self, *, previous: Mapping[str, Sequence[int]] | None, previous_at: datetime | None
    ) -> Summary:
        """What the group's next update says against `previous`, the state its last update
        recorded; None for the update the tally was last `told` of (then only the incidents
        touched since are compared)."""
        if previous is not None:
            ordered = dict(sorted(self._tallies.items(), key=lambda kv: kv[1].first))
            whole = summary_of(ordered, previous=previous, previous_at=previous_at)
            return replace(whole, told=self._adds)
        told = self._told
        tallies = self._tallies
        touched = sorted(
            (inc for inc in self._touched if inc in tallies), key=lambda inc: tallies[inc].first
        )
        new, revised, retracted, confirmed = [], [], [], []
        state = self._state
        for inc in touched:
            now, before = state.get(inc), told.get(inc)
            if now is None:
                if before is not None:
                    retracted.append(inc)
                continue
            if before is None:
                new.append(inc)
            elif changed(before, now):
                revised.append(inc)
            if now[4] and (before is None or not before[4]):
                confirmed.append(inc)
        return Summary(
            totals=Casualties(*self._totals),
            incidents=len(state),
            live_reports=self._live_reports,
            new=tuple(new),
            revised=tuple(revised),
            retracted=tuple(retracted),
            confirmed=tuple(confirmed),
            kinds=_most_first(self._kinds),
            regions=tuple(r for r, _ in _most_first(self._regions)),
            since=previous_at,
            state=dict(state),
            revisions=_revisions(revised, told, state),
            told=self._adds,
            highs=Casualties(*self._highs),
        )

    def live_incidents(self, since: float = float("-inf")) -> list[tuple[str, float, str, str]]:
        """(incident, when its earliest report says it occurred as a POSIX timestamp, its
        region, its kind) for each live incident that occurred after `since` (a POSIX
        timestamp): what a surge counts (dispatcher.surge)."""
        return [
            (inc, t.first[0], t.region, t.kind)
            for inc, t in self._tallies.items()
            if t.first[0] > since and t.count is not None
        ]

    def live_window(self, since: float) -> tuple[int, float | None, float | None]:
        """How many live incidents occurred after `since` (a POSIX timestamp), and when the
        earliest and the latest of them did: `live_incidents(since)` counted, in
        logarithmic time."""
        firsts = self._firsts
        i = bisect_right(firsts, since)
        if i == len(firsts):
            return 0, None, None
        return len(firsts) - i, firsts[i], firsts[-1]

    def told(self, seq: int, summary: Summary) -> None:
        """Update `seq` of the group was written from `summary` (of this tally): the next
        summary compares against it."""
        self._told = summary.state  # a summary's own copy, never changed
        self.told_seq = seq
        self._touched = {inc: n for inc, n in self._touched.items() if n > summary.told}


def _most_first(counter: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _revisions(
    revised: Iterable[str], before: Mapping[str, Sequence[int]], now: Mapping[str, Sequence[int]]
) -> tuple[tuple[str, str, int, int], ...]:
    return tuple(
        (inc, name, was, is_)
        for inc in revised
        for name, was, is_ in zip(COUNT_FIELDS, before[inc], now[inc], strict=False)
        if was != is_
    )


def summary_of(
    tallies: Mapping[str, Tally],
    *,
    previous: Mapping[str, Sequence[int]],
    previous_at: datetime | None,
) -> Summary:
    """A Summary from each incident's tally, in the order the incidents are to be shown."""
    live = {inc: t for inc, t in tallies.items() if t.count is not None}
    state = {inc: t.count.as_list() for inc, t in live.items() if t.count is not None}
    new = [inc for inc in live if inc not in previous]
    revised = [inc for inc in live if inc in previous and changed(previous[inc], state[inc])]
    confirmed = [
        inc for inc in live if state[inc][4] and (inc not in previous or not list(previous[inc])[4])
    ]
    retracted = [inc for inc in tallies if inc not in live and inc in previous]
    counts = [t.count for t in live.values() if t.count is not None]
    return Summary(
        totals=sum((c.casualties for c in counts), Casualties()),
        incidents=len(live),
        live_reports=sum(c.live_reports for c in counts),
        new=tuple(new),
        revised=tuple(revised),
        retracted=tuple(retracted),
        confirmed=tuple(confirmed),
        kinds=_most_first(Counter(t.kind for t in live.values())),
        regions=tuple(r for r, _ in _most_first(Counter(t.region for t in live.values()))),
        since=previous_at,
        state=state,
        revisions=_revisions(revised, previous, state),
        highs=sum((c.highs for c in counts), Casualties()),
    )
