"""The live feed: what became of each accepted report, for the operators' desk.

The pipeline publishes one event per report it stored or refused to store again (new
incident, merged, revised, retracted, duplicate, stale, conflict); the desk's Server-Sent
Events stream reads them. Events have increasing ids and the hub keeps the last `size` in a
ring, so a desk that reconnects with `Last-Event-ID` gets every event it missed; one whose
id has left the ring is told to reload instead. The hub lives in one process: on several
instances each desk sees the reports its own instance accepted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatcher.model import Report
    from dispatcher.rules.load import RuleSet
    from dispatcher.store.writer_wire import SaveResult

RING = 10_000


def outcome_word(result: SaveResult) -> str:
    """What an operator calls what became of a report."""
    if result.outcome != "created":
        return result.outcome  # duplicate, stale, conflict
    report = result.stored.report
    if report.status == "retracted":
        return "retracted"
    if report.revision > 1:
        return "revised"
    return "merged" if result.merged else "new"


def event_of(result: SaveResult, rules: RuleSet, at: datetime) -> Callable[[], dict[str, Any]]:
    """The feed's event for one report (without its id, which the hub gives), made when a
    desk first reads it: most events are never read (no desk is open), and making each
    cost as much as the rest of the feed. What the rules call its region is taken now (the
    rules themselves are not kept: the ring would hold on to every version reloaded)."""
    r = result.stored.report
    return partial(
        _event,
        r,
        outcome_word(result),
        at,
        rules.region_name(r.region, "en"),
        rules.region_name(r.region, "ar"),
    )


def _event(r: Report, outcome: str, at: datetime, name: str, name_ar: str) -> dict[str, Any]:
    c = r.casualties
    return {
        "outcome": outcome,
        "at": at.isoformat(),
        "source": r.source,
        "report": r.id,
        "revision": r.revision,
        "kind": r.kind,
        "status": r.status,
        "occurred_at": r.occurred_at.isoformat(),
        "region": r.region,
        "region_name": name,
        "region_name_ar": name_ar,
        "incident": r.incident,
        "lat": r.location.lat if r.location else None,
        "lon": r.location.lon if r.location else None,
        "casualties": {
            "killed": c.killed,
            "injured": c.injured,
            "trapped": c.trapped,
            "rescued": c.rescued,
        },
    }


class Event:
    """One event of the feed: its id, and its data (made when first read, if given as a
    function that makes it)."""

    __slots__ = ("_data", "id")

    def __init__(self, id: int, data: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        self.id = id
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        data = self._data
        if callable(data):
            data = self._data = data()
        return data


class FeedHub:
    """A bounded ring of events and the waiters for the next one."""

    def __init__(self, size: int = RING) -> None:
        self._ring: deque[Event] = deque(maxlen=size)
        self._last = 0
        # What the readers waiting now wait on; None while nobody waits. A publish with no
        # reader waiting then costs no task and no lock (it runs once per report).
        self._changed: asyncio.Future[None] | None = None
        self.closed = False

    @property
    def last_id(self) -> int:
        return self._last

    def publish(self, items: Sequence[dict[str, Any] | Callable[[], dict[str, Any]]]) -> None:
        """Add events (called on the event loop, after the reports were committed)."""
        for data in items:
            self._last += 1
            self._ring.append(Event(self._last, data))
        if items:
            self._wake()

    def close(self) -> None:
        """End every reader's wait (the service is shutting down)."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    def since(self, after: int) -> list[Event] | None:
        """Every event after id `after`, or None when some of them have left the ring (the
        reader must reload). An id ahead of ours (the service restarted) also reloads."""
        if after > self._last:
            return None
        if after == self._last:
            return []
        oldest = self._ring[0].id if self._ring else self._last + 1
        if after + 1 < oldest:
            return None
        skip = after + 1 - oldest
        return [e for i, e in enumerate(self._ring) if i >= skip]

    async def wait(self, after: int, seconds: float) -> bool:
        """Wait up to `seconds` for an event after `after`; False if none came."""
        if self._last > after or self.closed:
            return True
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        try:
            # Shielded: one reader's timeout must not cancel what the others wait on.
            await asyncio.wait_for(asyncio.shield(self._changed), seconds)
        except TimeoutError:
            return False
        return True  # woken by a publish (so an event after `after`) or by close
