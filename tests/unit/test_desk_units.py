"""The desk's pure parts: the feed's ring, sessions' idle end, and the outcome words."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.feed import FeedHub, outcome_word
from dispatcher.model import Report
from dispatcher.settings import ApiKey
from dispatcher.store.report_row import StoredReport
from dispatcher.store.writer_wire import SaveResult
from dispatcher.web.desk import i18n
from dispatcher.web.desk.sessions import Sessions

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


async def test_the_ring_replays_what_it_holds_and_not_what_left_it() -> None:
    hub = FeedHub(size=3)
    hub.publish([{"n": i} for i in range(1, 6)])  # ids 1..5; the ring holds 3, 4, 5
    assert hub.last_id == 5
    assert hub.since(5) == []
    assert [e.id for e in hub.since(4) or []] == [5]
    assert [e.id for e in hub.since(2) or []] == [3, 4, 5]
    assert hub.since(1) is None  # 2 is gone: reload
    assert hub.since(0) is None
    assert hub.since(6) is None  # ahead of us: the service restarted


async def test_a_waiter_wakes_for_the_next_event_and_times_out_without_one() -> None:
    hub = FeedHub()
    assert await hub.wait(0, 0.01) is False
    hub.publish([{"n": 1}])
    assert await hub.wait(0, 0.01) is True


async def test_an_event_given_as_a_function_is_made_once_when_read() -> None:
    made: list[int] = []

    def make() -> dict[str, int]:
        made.append(1)
        return {"n": len(made)}

    hub = FeedHub()
    hub.publish([make, {"n": 0}])
    assert made == []
    events = hub.since(0) or []
    assert [e.data for e in events] == [{"n": 1}, {"n": 0}]
    assert [e.data for e in events] == [{"n": 1}, {"n": 0}]
    assert made == [1]


async def test_every_reader_waiting_wakes_for_a_publish_and_for_close() -> None:
    hub = FeedHub()
    patient = asyncio.create_task(hub.wait(0, 60))
    assert await hub.wait(0, 0.01) is False  # one reader gives up; the other waits on
    assert not patient.done()
    hub.publish([{"n": 1}])
    assert await asyncio.wait_for(patient, 5) is True
    later = [asyncio.create_task(hub.wait(1, 60)) for _ in range(2)]
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(asyncio.gather(*later), 5) == [True, True]


def stored(revision: int = 1, status: str = "unconfirmed") -> StoredReport:
    report = Report("obs", "r1", "airstrike", T0, "SY07", status=status, revision=revision)
    return StoredReport(report, 1, T0, "k", "v")


@pytest.mark.parametrize(
    ("result", "word"),
    [
        (SaveResult("created", stored()), "new"),
        (SaveResult("created", stored(), merged=True), "merged"),
        (SaveResult("created", stored(revision=2), merged=True), "revised"),
        (SaveResult("created", stored(revision=3, status="retracted")), "retracted"),
        (SaveResult("duplicate", stored()), "duplicate"),
        (SaveResult("stale", stored()), "stale"),
        (SaveResult("conflict", stored()), "conflict"),
    ],
)
def test_outcome_words(result: SaveResult, word: str) -> None:
    assert outcome_word(result) == word


def test_a_session_ends_after_twelve_idle_hours_and_each_use_extends_it() -> None:
    sessions = Sessions()
    key = ApiKey(name="ops", sha256="a" * 64, scopes=["read"])
    s = sessions.open(key, T0)
    assert sessions.get(s.id, T0 + timedelta(hours=11)) is s
    assert sessions.get(s.id, T0 + timedelta(hours=22)) is s  # 11 h after the last use
    assert sessions.get(s.id, T0 + timedelta(hours=34, seconds=1)) is None
    assert len(sessions) == 0
    assert sessions.get("made-up", T0) is None


def test_the_oldest_sessions_go_past_the_limit() -> None:
    sessions = Sessions(limit=2)
    key = ApiKey(name="ops", sha256="a" * 64, scopes=["read"])
    first, second, third = (sessions.open(key, T0) for _ in range(3))
    assert sessions.get(first.id, T0) is None
    assert sessions.get(second.id, T0) is second
    assert sessions.get(third.id, T0) is third


@pytest.mark.parametrize(
    ("n", "ar", "en"),
    [
        (1, "دقيقة واحدة", "1\u00a0min"),
        (2, "دقيقتين", "2\u00a0min"),
        (3, "3\u00a0دقائق", "3\u00a0min"),
        (10, "10\u00a0دقائق", "10\u00a0min"),
        (11, "11\u00a0دقيقة", "11\u00a0min"),
    ],
)
def test_a_wait_in_minutes_reads_as_each_language_counts(n: int, ar: str, en: str) -> None:
    assert (i18n.minutes("ar", n), i18n.minutes("en", n)) == (ar, en)
