"""The pipeline: a report goes intake -> locate -> route -> store; due groups go group ->
render -> outbox -> delivery.

This is where the stages meet. Web handlers call `accept`; the scheduler calls `tick`.
Decisions stay in the pure modules (a flush's is `flush.py`); this one sequences them and
does the I/O through the store's rooms (`store/ports.py`).

About 500 lines: a surge group's flush (`_flush_surge`) is still carried out here; its
decision is already `surge.decide`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

from dispatcher import flush, logs
from dispatcher.clock import Clock
from dispatcher.feed import FeedHub, event_of
from dispatcher.group import GroupTally
from dispatcher.intake import ReportIn, to_report
from dispatcher.metrics import Metrics
from dispatcher.model import LOCALES, Report
from dispatcher.notify.base import Channel
from dispatcher.notify.outbox import Delivery
from dispatcher.notify.render_surge import render_surge
from dispatcher.rules.live import LiveRules
from dispatcher.silence import first_muting
from dispatcher.store.ports import PipelineStore
from dispatcher.store.rows import GroupRow
from dispatcher.store.writer_wire import SaveResult
from dispatcher.surge import SURGE_LABEL, SurgeState, decide_counted
from dispatcher.surge import after as surge_after
from dispatcher.surge import places as surge_places
from dispatcher.targets import Router

log = logging.getLogger("dispatcher.pipeline")

MAX_IMMEDIATE = 64  # immediate flushes in flight at once; past them the next tick sends
MAX_TALLIES = 256  # open groups whose reports are kept counted between flushes
COUNT_IN_THREAD = 2000  # reports, counted into a new tally off the event loop
# How long a tally keeps the reports of an incident nothing touches (then only its count):
# twice the merge window, past which a report that occurred when it arrives cannot join it.
SETTLE_AFTER = 2 * timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Accepted:
    result: SaveResult
    routes: tuple[str, ...]  # the routes a new report took
    surges: int = 0  # how many of them, the last ones, are surge routes it counts toward


class Pipeline:
    def __init__(
        self,
        *,
        store: PipelineStore,
        rules: LiveRules,
        channel: Channel,
        delivery: Delivery,
        clock: Clock,
        display_tz: tzinfo,
        metrics: Metrics,
        feed: FeedHub | None = None,
        settle_after: timedelta = SETTLE_AFTER,
        max_immediate: int = MAX_IMMEDIATE,
    ) -> None:
        self.store = store
        self.rules = rules
        self.channel = channel
        self.delivery = delivery
        self.clock = clock
        self.display_tz = display_tz
        self.metrics = metrics
        self.feed = feed
        self._background: set[asyncio.Task[None]] = set()
        self.max_immediate = max_immediate
        self._router: Router | None = None  # routing remembered for the rules in force
        self.tallies = Tallies(settle_after=settle_after)
        # One immediate flush per group at a time (see push_now); a lock lives while in use.
        self._flushing: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def accept_many(self, wires: Sequence[ReportIn], *, key_name: str) -> list[Accepted]:
        """Place, route and store validated reports in one transaction; returns once committed."""
        one = f"{wires[0].source}/{wires[0].id}" if len(wires) == 1 else None
        token = logs.REPORT_ID.set(one)  # on every line logged meanwhile
        try:
            return await self._accept_many(wires, key_name=key_name)
        finally:
            logs.REPORT_ID.reset(token)

    async def _accept_many(self, wires: Sequence[ReportIn], *, key_name: str) -> list[Accepted]:
        rules = self.rules.current
        router = self._router
        if router is None or router.rules is not rules:
            router = self._router = Router(rules)
        places = [
            (w.region, w.location.lat, w.location.lon) if w.location else (w.region, None, None)
            for w in wires
        ]
        # One spatial query for a batch; for one report a plain lookup costs less.
        regions = rules.locate_many(places) if len(places) != 1 else [rules.locate(*places[0])]
        reports = [
            to_report(wire, region=region, tier=rules.tier_of(wire.source))
            for wire, region in zip(wires, regions, strict=True)
        ]
        routed = [router(report) for report in reports]
        results = await self.store.save_reports(
            [(report, r.targets) for report, r in zip(reports, routed, strict=True)],
            now=self.clock(),
            key_name=key_name,
            rules_version=rules.version,
        )
        if self.feed is not None:
            # Committed: the desk's live feed may tell it.
            at = self.clock()
            self.feed.publish([event_of(result, rules, at) for result in results])
        outcomes = Counter(result.outcome for result in results)
        for outcome, n in outcomes.items():
            self.metrics.reports.labels(outcome).inc(n)
        urgent = [
            group_id
            for result, r in zip(results, routed, strict=True)
            if result.outcome == "created" and any(r.immediate)
            for group_id, immediate in zip(result.group_ids, r.immediate, strict=True)
            if immediate
        ]
        # The groups are committed as due now, so a crash before this runs, or a surge with
        # `max_immediate` flushes already in flight, only delays the push to the next tick.
        if urgent and len(self._background) < self.max_immediate:
            task = asyncio.create_task(self.push_now(urgent))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return [
            Accepted(result, r.routes, r.surges) for result, r in zip(results, routed, strict=True)
        ]

    async def push_now(self, group_ids: Sequence[str]) -> None:
        """Flush groups of immediate routes and send their pushes at once: the update and
        its pushes are written and claimed in one transaction, then sent, without waiting
        for a tick or a delivery round."""
        try:
            for group_id in dict.fromkeys(group_ids):
                lock = self._flushing.setdefault(group_id, asyncio.Lock())
                # The next report's flush waits here, then sends what joined meanwhile,
                # rather than race this one for the group's next update and lose.
                async with lock:
                    for _ in range(3):  # lost to a tick or another instance: look again
                        group = await self.store.get_group(group_id)
                        if group is None or not group.pending:
                            break
                        if await self._flush(group, send_now=True):
                            break
        except Exception:
            log.exception("immediate push failed; the next tick sends it")

    async def drain(self) -> None:
        """Wait for immediate pushes in flight (at shutdown, and in tests)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def accept(self, wire: ReportIn, *, key_name: str) -> Accepted:
        (accepted,) = await self.accept_many([wire], key_name=key_name)
        return accepted

    async def tick(self) -> None:
        """One scheduler tick: send the updates that are due, then deliver the outbox."""
        await self.flush_due()
        await self.delivery.run_once()

    async def forget(self, *, delivery_records: timedelta, disabled_devices: timedelta) -> None:
        """The retention job: what need not be kept any longer is deleted."""
        now = self.clock()
        records, phones = await self.store.forget(
            closed_before=now - delivery_records, disabled_before=now - disabled_devices
        )
        if records or phones:
            log.info("retention: %d delivery records and %d disabled phones deleted",
                     records, phones)  # fmt: skip

    async def flush_due(self) -> int:
        flushed = 0
        for group in await self.store.due_groups(self.clock()):
            try:
                if await self._flush(group):
                    flushed += 1
            except Exception:
                # One broken group must not stop the others; it stays due and is tried again.
                log.exception("flushing group %s failed; it will be retried", group.id)
        return flushed

    async def _flush(self, group: GroupRow, *, send_now: bool = False) -> bool:
        """Send what the group owes its leaders now (an update, a reminder, an escalation to
        another team, or its closing), unless a silence or an inhibition holds it. What to
        do is `flush`'s to decide; this reads for it and carries the decision out."""
        with logs.context(logs.GROUP_ID, group.id):  # on every line logged meanwhile
            if SURGE_LABEL in group.labels:
                return await self._flush_surge(group)
            return await self._flush_group(group, send_now=send_now)

    async def _flush_group(self, group: GroupRow, *, send_now: bool) -> bool:
        rules = self.rules.current
        now = self.clock()
        planned = flush.plan(group, rules, now, self.display_tz)
        if isinstance(planned, flush.Settle):
            return await self.store.settle(group, wakeup=planned.wakeup)
        # Everything else in one read, with the group again: its reports then match it.
        tally = self.tallies.get(group.id)
        if tally is not None and tally.recount != group.recount:
            tally = None  # an incident of the group was merged into another: count it whole
        whole = functools.partial(
            self.store.flush_reads,
            group.id,
            leader_ids=planned.leader_ids,
            silences_ending_after=now,
            today=planned.today,
        )
        read = await whole(
            counted=tally.counted if tally is not None else None,
            told_seq=tally.told_seq if tally is not None else None,
        )
        if read is not None and tally is not None and read.group.recount != tally.recount:
            read = await whole()  # merged since the group was looked at: read it again
        if read is None or flush.lost(planned, read) is not None:
            return False
        fresh = await self.tallies.count(group.id, read.reports, whole=read.whole, now=now)
        if fresh is None:  # they touch reports the tally let go of: count the group whole
            read = await whole()
            if read is None or flush.lost(planned, read) is not None:
                return False
            fresh = await self.tallies.count(group.id, read.reports, whole=True, now=now)
        assert fresh is not None  # a whole count needs nothing let go of
        tally = fresh
        tally.recount = read.group.recount
        last = read.last
        # None: the tally holds what the last update said (a new tally: that there was none),
        # and compares only what changed since.
        summary = tally.summary(
            previous=None if last is None else last.state,
            previous_at=last.at if last is not None else None,
        )
        decide_with = partial(
            flush.decide,
            planned,
            read,
            summary,
            rules=rules,
            now=now,
            tz=self.display_tz,
            channel=self.channel.name,
            channels=self.delivery.channels,
        )
        decision = decide_with()
        if isinstance(decision, flush.ReadPushes):  # an inhibit rule targets the group
            pushes = await self.store.recent_pushes(decision.routes, since=decision.since)
            decision = decide_with(pushes=pushes)
        assert not isinstance(decision, flush.ReadPushes)  # given the pushes, it decides
        group = read.group
        if isinstance(decision, flush.Settle):
            return await self.store.settle(group, wakeup=decision.wakeup)
        if isinstance(decision, flush.Hold):
            log.info("group %s held by %s until %s", group.id, decision.why, decision.until)
            return await self.store.hold(group, until=decision.until)
        for warning in decision.warnings:
            log.warning("%s", warning)
        if send_now and decision.action == "update":
            claimed = await self.store.record_update_and_claim(
                group,
                now=now,
                summary=decision.record,
                outbox=list(decision.outbox),
                rules_version=rules.version,
                lease=self.delivery.lease,
                wakeup=decision.wakeup,
            )
            if claimed is None:
                return False
            tally.told(group.seq + 1, summary)
            self.metrics.updates.inc()
            await self.delivery.deliver(claimed)
            return True
        written = await self.store.record_update(
            group,
            now=now,
            summary=decision.record,
            outbox=list(decision.outbox),
            rules_version=rules.version,
            wakeup=decision.wakeup,
            close=decision.close,
            escalate=decision.escalate,
        )
        if written:
            tally.told(group.seq + 1, summary)
            self.metrics.updates.inc()
            if decision.close:
                self.tallies.forget(group.id)
        return written

    async def _flush_surge(self, group: GroupRow) -> bool:
        """A surge group's turn (dispatcher.surge): count its live incidents in the route's
        window, then open, repeat or end its surge alert, close the group when nothing is
        left to count, or sleep until the count can next change. A silence holds the push
        until it ends; the group then decides afresh."""
        rules = self.rules.current
        now = self.clock()
        route = rules.route(group.route_id)
        if route is None or route.surge is None:
            log.warning("surge group %s: route %s is no longer a surge route; closing it",
                        group.id, group.route_id)  # fmt: skip
            self.tallies.forget(group.id)
            return await self.store.record_surge(
                group, now=now, summary={"kind": "surge-closed", "reason": "route removed"},
                outbox=[], rules_version=rules.version, state=SurgeState(), wakeup=None,
                close=True,
            )  # fmt: skip
        rule = route.surge
        leaders = rules.leaders_of(group.receiver)
        tally = self.tallies.get(group.id)
        read = await self.store.flush_reads(
            group.id,
            leader_ids=[leader.id for leader in leaders],
            silences_ending_after=now,
            today=None,
            counted=tally.counted if tally is not None else None,
        )
        if read is None or read.group.seq != group.seq or read.group.closed_at is not None:
            return False  # another flusher got there first
        fresh = await self.tallies.count(group.id, read.reports, whole=read.whole, now=now)
        if fresh is None:  # they touch reports the tally let go of: count the group whole
            read = await self.store.flush_reads(
                group.id,
                leader_ids=[leader.id for leader in leaders],
                silences_ending_after=now,
                today=None,
            )
            if read is None or read.group.seq != group.seq or read.group.closed_at is not None:
                return False
            fresh = await self.tallies.count(group.id, read.reports, whole=True, now=now)
        assert fresh is not None  # a whole count needs nothing let go of
        tally = fresh
        group = read.group
        # The window's edge as a POSIX timestamp is exact: near today floats are a quarter
        # of a microsecond apart, so times to the microsecond keep their order as floats and
        # come back from them unchanged. A surge's group of thousands is counted without a
        # walk through it (most ticks: its count changed, not what it owes its receiver).
        edge = (now - rule.within).timestamp()
        n, oldest, newest = tally.live_window(edge)
        state = group.surge_state
        decision = decide_counted(
            rule, n, _utc(oldest), _utc(newest), state, now, route.group_interval
        )
        if decision.action is None:
            return await self.store.settle(group, wakeup=decision.wakeup)
        counted = [
            (inc, datetime.fromtimestamp(ts, UTC), region, kind)
            for inc, ts, region, kind in tally.live_incidents(since=edge)
        ]
        kind = {"open": "surge", "repeat": "surge-repeat", "subside": "surge-subsided",
                "close": "surge-closed"}[decision.action]  # fmt: skip
        record: dict[str, Any] = {
            "kind": kind,
            "surge": {
                "count": decision.count,
                "at_least": rule.at_least,
                "within_s": rule.within.total_seconds(),
                "incidents": sorted(inc for inc, *_ in counted),
            },
        }
        after_state = surge_after(decision, state, now)
        if decision.action == "close":  # nothing left to count: no push, the group closes
            self.tallies.forget(group.id)
            return await self.store.record_surge(
                group, now=now, summary=record, outbox=[], rules_version=rules.version,
                state=after_state, wakeup=None, close=True,
            )  # fmt: skip
        labels = dict(group.labels)
        paths = [rules.region_path(region) for _, _, region, _ in counted]
        under = labels.get("region") or _common_ancestor(paths)
        muted = first_muting(
            read.silences,
            now,
            route_id=group.route_id,
            receiver=group.receiver,
            region_paths=[rules.region_path(under)] if under else paths,
            kinds=sorted({kind for *_, kind in counted}),
        )
        if muted is not None:
            log.info("surge group %s held by silence %s until %s", group.id, muted.id,
                     muted.ends_at)  # fmt: skip
            return await self.store.hold(group, until=muted.ends_at)
        where = surge_places([region for _, _, region, _ in counted], rules.region_path, under)
        record["surge"]["places"] = [list(p) for p in where]
        rendered = {
            locale: render_surge(
                decision.action,
                count=decision.count,
                was=state.told,
                rule=rule,
                place=rules.region_name(under, locale)
                if under
                else rules.receiver_name(group.receiver),
                places=[(rules.region_name(r, locale), n) for r, n in where],
                locale=locale,
            )
            for locale in LOCALES
        }
        record["texts"] = {loc: {"title": r.title, "body": r.body} for loc, r in rendered.items()}
        minimal = route.payload == "minimal"
        data = {"group_id": group.id, "seq": str(group.seq + 1), "kind": kind}
        if not minimal:
            data["count"] = str(decision.count)
        outbox, warnings = flush.fan_out(
            group,
            leaders,
            read.devices,
            rendered,
            data=data,
            minimal=minimal,
            priority="normal" if decision.action == "subside" else "high",
            expires_at=now + route.ttl,
            rules=rules,
            channel=self.channel.name,
            channels=self.delivery.channels,
        )
        for warning in warnings:
            log.warning("%s", warning)
        written = await self.store.record_surge(
            group, now=now, summary=record, outbox=outbox, rules_version=rules.version,
            state=after_state, wakeup=decision.wakeup,
        )  # fmt: skip
        if written:
            self.metrics.updates.inc()
        return written


class Tallies:
    """Each open group's reports as counted so far, so that a flush reads and counts only
    what joined since (the most recently flushed groups; rebuilt from the store). Each
    keeps the reports of the incidents touched in the last `settle_after`, and the counts of
    all of them: a group under a steady stream keeps a bounded tally."""

    def __init__(
        self,
        most: int = MAX_TALLIES,
        in_thread_above: int = COUNT_IN_THREAD,
        settle_after: timedelta = SETTLE_AFTER,
    ) -> None:
        self.most = most
        self.in_thread_above = in_thread_above
        self.settle_after = settle_after
        self._tallies: OrderedDict[str, GroupTally] = OrderedDict()

    def get(self, group_id: str) -> GroupTally | None:
        return self._tallies.get(group_id)

    def forget(self, group_id: str) -> None:
        self._tallies.pop(group_id, None)

    @property
    def held(self) -> int:
        """Reports held by every tally."""
        return sum(tally.held for tally in self._tallies.values())

    async def count(
        self, group_id: str, joined: list[tuple[int, Report]], *, whole: bool, now: datetime
    ) -> GroupTally | None:
        """The group's tally with `joined` (read at `now`) added (a new one if `whole`: they
        are all of it). None, and the tally forgotten, if they touch reports it let go of:
        the group is then to be read and counted whole."""
        at = now.timestamp()
        before = at - self.settle_after.total_seconds()
        tally = self._tallies.get(group_id)
        if tally is None or whole:
            tally = GroupTally()
            if len(joined) > self.in_thread_above:
                # A big group's first flush here (or after a restart): hundreds of ms of
                # counting, and a third of that letting go of its old reports. In a thread
                # the event loop keeps taking turns on the interpreter lock (every few ms)
                # instead of stalling; the tally is not shared yet.
                await asyncio.to_thread(_add_and_settle, tally, joined, at, before)
                joined = []
        if not _add_and_settle(tally, joined, at, before):
            self.forget(group_id)
            return None
        self._tallies[group_id] = tally
        self._tallies.move_to_end(group_id)
        while len(self._tallies) > self.most:
            self._tallies.popitem(last=False)
        return tally


def _add_and_settle(
    tally: GroupTally, joined: list[tuple[int, Report]], at: float, before: float
) -> bool:
    if not tally.add(joined, at):
        return False
    tally.settle(before)
    return True


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _common_ancestor(paths: Sequence[tuple[str, ...]]) -> str | None:
    """The deepest region that holds every one of these regions (paths from the top)."""
    if not paths:
        return None
    common: str | None = None
    for level in zip(*paths, strict=False):
        if len(set(level)) != 1:
            break
        common = level[0]
    return common
