"""When alert groups send, and what their updates count."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.group import (
    GroupTally,
    Life,
    Timing,
    due_action,
    is_due,
    next_flush_after_report,
    next_wakeup,
    summarize,
)
from dispatcher.model import Casualties, Report

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TIMING = Timing(group_wait=30 * S, group_interval=120 * S, repeat_interval=3600 * S)


@pytest.mark.parametrize(
    ("now", "pending", "next_flush_at", "last_flush_at", "expected", "why"),
    [
        (T0 + 5 * S, True, T0 + 30 * S, None, T0 + 30 * S, "first wait is not extended"),
        (T0 + 40 * S, False, None, T0 + 30 * S, T0 + 150 * S, "next update one interval later"),
        (T0 + 200 * S, False, None, T0 + 30 * S, T0 + 200 * S, "interval passed: send now"),
        (T0 + 60 * S, True, T0 + 150 * S, T0 + 30 * S, T0 + 150 * S, "already pending: kept"),
        (T0, True, None, None, T0 + 30 * S, "no timer yet: group_wait from now"),
        (
            T0 + 60 * S,
            False,
            T0 + 3600 * S,
            None,
            T0 + 90 * S,
            "nothing sent yet, asleep on a timer (a surge below its threshold): group_wait",
        ),
    ],
)
def test_next_flush_after_report(
    now: datetime,
    pending: bool,
    next_flush_at: datetime | None,
    last_flush_at: datetime | None,
    expected: datetime,
    why: str,
) -> None:
    got = next_flush_after_report(
        now=now,
        timing=TIMING,
        pending=pending,
        next_flush_at=next_flush_at,
        last_flush_at=last_flush_at,
    )
    assert got == expected, why


@pytest.mark.parametrize(
    ("pending", "next_flush_at", "now", "due"),
    [
        (True, T0, T0, True),
        (True, T0 + S, T0, False),
        (False, T0, T0 + S, False),
        (True, None, T0, False),
    ],
)
def test_is_due(pending: bool, next_flush_at: datetime | None, now: datetime, due: bool) -> None:
    assert is_due(pending=pending, next_flush_at=next_flush_at, now=now) is due


def report(
    rid: str,
    *,
    revision: int = 1,
    killed: int = 0,
    injured: int = 0,
    status: str = "unconfirmed",
    source: str = "obs",
    kind: str = "airstrike",
    region: str = "SY0703",
    incident: str | None = None,
) -> Report:
    return Report(
        source=source,
        id=rid,
        kind=kind,
        occurred_at=T0,
        region=region,
        casualties=Casualties(killed=killed, injured=injured),
        status=status,
        revision=revision,
        incident=incident or f"inc-{rid}",
    )


def test_summary_counts_each_report_once_at_its_latest_revision() -> None:
    reports = [
        report("a", killed=2, injured=5),
        report("a", revision=2, killed=3, injured=4),  # a correction, not a second strike
        report("b", killed=1),
    ]
    s = summarize(reports, previous={}, previous_at=None)
    assert s.totals == Casualties(killed=4, injured=4)
    assert (s.incidents, s.live_reports) == (2, 2)
    assert s.new == ("inc-a", "inc-b")


def test_two_observers_of_one_incident_count_once_at_the_larger_figure() -> None:
    reports = [
        report("a", source="obs", killed=3, injured=2, incident="strike"),
        report("x", source="spotter", killed=2, injured=6, incident="strike"),
        report("y", source="spotter", killed=1, status="confirmed", incident="strike"),
    ]
    s = summarize(reports, previous={}, previous_at=None)
    assert s.totals == Casualties(killed=3, injured=6), "largest per field, not the sum"
    assert (s.incidents, s.live_reports) == (1, 3)
    assert s.confirmed == ("strike",)


def test_summary_says_what_changed_since_the_last_update() -> None:
    reports = [
        report("a", killed=2),
        report("a", revision=2, killed=3),
        report("b", killed=1),
        report("b", revision=2, killed=1, status="retracted"),
        report("c", injured=7),
        report("d", killed=1),
        report("d", revision=2, killed=1, status="confirmed"),
    ]
    previous = {"inc-a": [2, 0, 0, 0, 0], "inc-b": [1, 0, 0, 0, 0], "inc-d": [1, 0, 0, 0, 0]}
    s = summarize(reports, previous=previous, previous_at=T0)
    assert s.new == ("inc-c",)
    assert s.revised == ("inc-a",)
    assert s.retracted == ("inc-b",)
    assert s.confirmed == ("inc-d",)
    assert s.totals == Casualties(killed=4, injured=7)
    assert s.changed
    assert s.since == T0
    assert s.changed_incidents == ("inc-c", "inc-a", "inc-d", "inc-b")


def test_summary_with_nothing_new_is_unchanged() -> None:
    # An update written before 0016 recorded five numbers per incident: it still compares.
    s = summarize([report("a")], previous={"inc-a": [0, 0, 0, 0, 0]}, previous_at=T0)
    assert not s.changed
    # The four figures, confirmed, then the highest figure any source gives per field.
    assert s.state == {"inc-a": [0, 0, 0, 0, 0, 0, 0, 0, 0]}


def test_summary_orders_kinds_by_count() -> None:
    reports = [report("a", kind="shelling"), report("b"), report("c"), report("d", kind="fire")]
    s = summarize(reports, previous={}, previous_at=None)
    assert s.kinds == (("airstrike", 2), ("fire", 1), ("shelling", 1))


M = 60 * S
H = 60 * M


def life(
    *,
    pending: bool = False,
    update_at: datetime | None = None,
    flushed: datetime | None = T0,
    reported: datetime | None = T0,
    acked: bool = False,
) -> Life:
    return Life(pending, update_at, flushed, reported, repeat_interval=H, close_after=2 * H,
                acked=acked)  # fmt: skip


@pytest.mark.parametrize(
    ("group", "now", "action", "wakeup", "why"),
    [
        (life(pending=True, update_at=T0 + 2 * M), T0 + M, None, T0 + 2 * M,
         "a change waits for its update time"),
        (life(pending=True, update_at=T0 + 2 * M), T0 + 2 * M, "update", T0 + 2 * M,
         "then it is told"),
        (life(pending=True, update_at=T0 + 3 * H), T0 + 3 * H, "update", T0 + 3 * H,
         "a change is told before the group closes"),
        (life(), T0 + 59 * M, None, T0 + H, "quiet and not acknowledged: a reminder at 1h"),
        (life(), T0 + H, "remind", T0 + H, "repeat_interval after the last push"),
        (life(flushed=T0 + H), T0 + 90 * M, None, T0 + 2 * H,
         "after a reminder, the next one, or the close"),
        (life(acked=True), T0 + H, None, T0 + 2 * H, "acknowledged: no reminders"),
        (life(acked=True), T0 + 2 * H, "close", T0 + 2 * H, "close_after without a report"),
        (life(), T0 + 5 * H, "close", T0 + H, "long overdue (a restart): close, not remind"),
        (life(flushed=None, reported=None), T0 + 9 * H, None, None, "nothing to wait for"),
    ],
)  # fmt: skip
def test_a_group_s_life(
    group: Life, now: datetime, action: str | None, wakeup: datetime | None, why: str
) -> None:
    assert due_action(group, now) == action, why
    assert next_wakeup(group) == wakeup, why


@pytest.mark.parametrize("seed", range(24))
def test_a_growing_group_counts_as_if_summed_up_whole(seed: int) -> None:
    """GroupTally, fed the reports of a group as they join (corrections, retractions,
    reports that move to another incident, rows seen twice), says what summarize says of
    all of them, after every flush: against the stored state of the last update, and against
    the update it was told of, comparing only what changed since (reports that join while
    an update is written, updates not written, restarts)."""
    rng = random.Random(seed)
    at = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    rows: list[tuple[int, Report]] = []
    revisions: dict[str, int] = {}

    def join(n: int) -> None:
        for _ in range(n):
            rid = f"r{rng.randint(0, 30)}"
            revisions[rid] = revisions.get(rid, 0) + 1
            report = Report(
                source=rng.choice(["obs", "spotter"]),
                id=rid,
                kind=rng.choice(["airstrike", "shelling"]),
                occurred_at=at + timedelta(minutes=rng.randint(0, 50)),
                region=rng.choice(["SY07", "SY0703", "SY02"]),
                casualties=Casualties(*(rng.randint(0, n) for n in (9, 9, 3, 2))),
                status=rng.choice(["unconfirmed", "confirmed", "retracted"]),
                revision=revisions[rid],
                incident=rng.choice([None, "inc-a", "inc-b", f"inc-{rid}"]),
            )
            rows.append((len(rows) + 1, report))

    tally = GroupTally()
    previous: dict[str, list[int]] = {}
    previous_at = None
    told = True  # the tally was told of the last update written (a new one: of none)
    for seq in range(1, 12):
        join(rng.randint(0, 25))
        if rng.random() < 0.1:  # a restart: a new tally counts the group whole
            tally, told = GroupTally(), previous_at is None
        tally.add(rows[rng.randint(0, len(rows)) :])  # newest first, some seen before
        tally.add(rows)
        whole = summarize([r for _, r in rows], previous=previous, previous_at=previous_at)
        assert tally.summary(previous=previous, previous_at=previous_at) == whole
        for minute in (-1, 0, rng.randint(0, 50), 50):  # a surge's window, counted
            since = (at + timedelta(minutes=minute)).timestamp()
            times = [t for _, t, _, _ in tally.live_incidents(since)]
            expected = (len(times), min(times), max(times)) if times else (0, None, None)
            assert tally.live_window(since) == expected
        if told:
            assert tally.summary(previous=None, previous_at=previous_at) == whole
        if rng.random() < 0.3:
            continue  # not written: held by a silence, or another flusher won
        written = tally.summary(previous=None if told else previous, previous_at=previous_at)
        late = len(rows)
        join(rng.randint(0, 3))  # joined while the update was written
        tally.add(rows[late:])
        tally.told(seq, written)
        previous, previous_at, told = dict(whole.state), at + timedelta(minutes=seq), True


@pytest.mark.parametrize("seed", range(24))
def test_a_tally_that_lets_go_of_old_reports_still_counts_exactly(seed: int) -> None:
    """A group under a steady stream: every minute reports join, most of them new
    incidents, some joining a recent one, now and then a correction or a late report of an
    old one, or rows read twice. The tally lets go of the reports of incidents untouched for
    ten minutes; when rows need what it let go of it refuses them and the group is counted
    whole. After every flush it says what summarize says of every report, and it holds
    only the reports of the last ten minutes' incidents."""
    rng = random.Random(seed)
    rows: list[tuple[int, Report]] = []
    revisions: dict[str, int] = {}
    incidents: list[str] = []
    horizon = 600.0

    def join(minute: int) -> None:
        stored = T0 + timedelta(minutes=minute)
        for _ in range(rng.randint(1, 6)):
            roll = rng.random()
            if roll < 0.08 and revisions:  # a correction or retraction of any report
                rid = rng.choice(sorted(revisions))
            else:
                rid = f"r{len(revisions)}"
            revisions[rid] = revisions.get(rid, 0) + 1
            if roll < 0.5 or not incidents:
                incidents.append(f"inc-{len(incidents)}")
                incident = incidents[-1]
            elif roll < 0.9:
                incident = rng.choice(incidents[-5:])  # joins a recent incident
            else:
                incident = rng.choice(incidents)  # a late report of any incident
            report = Report(
                source=rng.choice(["obs", "spotter", "team"]),
                id=rid,
                kind="airstrike",
                occurred_at=stored - timedelta(seconds=rng.randint(0, 300)),
                region=rng.choice(["SY0703", "SY02"]),
                casualties=Casualties(*(rng.randint(0, n) for n in (9, 9, 3, 2))),
                status=rng.choice(["unconfirmed", "confirmed", "confirmed", "retracted"]),
                revision=revisions[rid],
                incident=incident,
                received_at=stored,
            )
            rows.append((len(rows) + 1, report))

    tally = GroupTally()
    counted_whole = 0
    previous: dict[str, list[int]] = {}
    previous_at = None
    told = True
    for minute in range(90):
        now = (T0 + timedelta(minutes=minute)).timestamp()
        join(minute)
        top = tally.counted.top
        # What a flush reads: the rows after those counted (a few seen before, now and then).
        after = max(0, top - rng.choice([0, 0, 0, 3]))
        if not tally.add(rows[after:], now):
            tally, told = GroupTally(), False
            assert tally.add(rows, now)
            counted_whole += 1
        tally.settle(now - horizon)
        whole = summarize([r for _, r in rows], previous=previous, previous_at=previous_at)
        assert tally.summary(previous=previous, previous_at=previous_at) == whole
        if told:
            assert tally.summary(previous=None, previous_at=previous_at) == whole
        assert tally.held == held_after(rows, now - horizon), "the last ten minutes' only"
        assert tally.counted.rows == len(rows)
        written = tally.summary(previous=None if told else previous, previous_at=previous_at)
        tally.told(minute, written)
        previous, previous_at, told = dict(whole.state), T0 + timedelta(minutes=minute), True
    assert len(rows) > 150
    assert tally.held < len(revisions) / 4, "it let go of most of them"
    # Counted whole when needed (and the counts were the same), yet mostly only what joined.
    assert 0 < counted_whole < 45


def held_after(rows: list[tuple[int, Report]], before: float) -> int:
    """The reports a tally of `rows` holds once it let go of those of the incidents that no
    row stored at or after `before` touched (joined, or left for another incident)."""
    latest: dict[str, Report] = {}
    recent: set[str] = set()
    for _, r in rows:
        key = f"{r.source}/{r.id}"
        old = latest.get(key)
        latest[key] = r
        assert r.received_at is not None
        if r.received_at.timestamp() >= before:
            recent.add(r.incident or "")
            if old is not None:
                recent.add(old.incident or "")
    return sum(1 for r in latest.values() if r.incident in recent)
