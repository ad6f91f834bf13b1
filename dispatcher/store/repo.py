"""The store's queries: every SQL statement the service runs sits here, behind `Store`.

Each public method is one transaction. The pipeline hands in plain values and gets plain
values back; nothing above this module sees SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    case,
    exists,
    func,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.group import Counted, GroupTarget, Timing
from dispatcher.incidents import MergeRule
from dispatcher.model import Casualties, Point, Report
from dispatcher.silence import MATCHERS, Silence
from dispatcher.store import access, writes
from dispatcher.store.access import KeyRow, Pairing, Revoked
from dispatcher.store.group_commit import ReportCommits
from dispatcher.store.rows import (
    Ack,
    DeliveryRow,
    DeviceRow,
    FlushReads,
    GroupRow,
    IncidentRow,
    LastUpdate,
    LeaderGroup,
    OpenGroup,
    OutboxItem,
    Outcome,
    PendingPush,
)
from dispatcher.store.tables import (
    alert_groups,
    devices,
    group_acks,
    group_reports,
    group_updates,
    incidents,
    notifications,
    reports,
    rule_files,
    rule_sets,
    service_keys,
    silences,
)
from dispatcher.store.writer import CALL, REPORTS, WriterProcess
from dispatcher.store.writes import ReportWrite, SaveResult, StoredReport
from dispatcher.surge import SurgeState

__all__ = [  # the rows are re-exported: callers import them from here or from rows
    "Ack",
    "DeliveryRow",
    "DeviceRow",
    "FlushReads",
    "GroupRow",
    "IncidentRow",
    "LastUpdate",
    "LeaderGroup",
    "OpenGroup",
    "OutboxItem",
    "Outcome",
    "PendingPush",
    "Store",
]


def _report_from_row(row: Any) -> StoredReport:
    location = Point(row.lat, row.lon) if row.lat is not None and row.lon is not None else None
    report = Report(
        source=row.source,
        id=row.ext_id,
        kind=row.kind,
        occurred_at=row.occurred_at,
        region=row.region,
        casualties=Casualties(row.killed, row.injured, row.trapped, row.rescued),
        status=row.status,
        revision=row.revision,
        location=location,
        given_region=row.given_region,
        notes=row.notes,
        incident=row.incident_id,
        tier=row.tier,
        site=row.site,
        received_at=row.received_at,
    )
    return StoredReport(report, row.pk, row.received_at, row.key_name, row.rules_version)


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in raw)


def _group_from_row(row: Any) -> GroupRow:
    return GroupRow(
        id=row.id,
        route_id=row.route_id,
        labels=_labels(row.labels),
        receiver=row.receiver,
        seq=row.seq,
        pending=row.pending,
        next_flush_at=row.next_flush_at,
        last_flush_at=row.last_flush_at,
        rules_version=row.rules_version,
        last_report_at=row.last_report_at,
        repeat_interval=_seconds(row.repeat_interval_s),
        close_after=_seconds(row.close_after_s),
        acked_at=row.acked_at,
        closed_at=row.closed_at,
        created_at=row.created_at,
        escalate_after=_seconds(row.escalate_after_s),
        escalated_at=row.escalated_at,
        group_interval=_seconds(row.group_interval_s) or timedelta(0),
        closed_reason=row.closed_reason,
        handed_over_to=row.handed_over_to,
        took_over_from=row.took_over_from,
        surge_open_at=row.surge_open_at,
        surge_told=row.surge_told,
        recount=row.recount,
    )


def _silence_from_row(r: Any) -> Silence:
    m = dict(r.matchers)
    return Silence(
        id=r.id,
        regions=frozenset(m.get("regions", [])),
        receivers=frozenset(m.get("receivers", [])),
        routes=frozenset(m.get("routes", [])),
        kinds=frozenset(m.get("kinds", [])),
        starts_at=r.starts_at,
        ends_at=r.ends_at,
        author=r.author,
        reason=r.reason,
        created_at=r.created_at,
    )


def _seconds(value: float | None) -> timedelta | None:
    return timedelta(seconds=value) if value is not None else None


T = TypeVar("T")


class Store:
    """All reads and writes of the service, one transaction per method."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        merge: MergeRule | None = None,
        writer: WriterProcess | None = None,
        reader: Engine | None = None,
    ) -> None:
        self.engine = engine
        self.merge = merge or MergeRule()
        self.writer = writer  # SQLite: the process that makes every write (db.create_writer)
        if writer is not None:
            writer.merge = self.merge
        self.reader = reader  # SQLite: a sync engine for a flush's reads (db.create_reader)
        self._commits: ReportCommits | None = None  # PostgreSQL: reports' group commit

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()  # answer what was accepted before closing
        if self._commits is not None:
            await self._commits.close()
        await self.engine.dispose()
        if self.reader is not None:
            await asyncio.to_thread(self.reader.dispose)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # --- reports -------------------------------------------------------------------------

    async def save_reports(
        self,
        items: Sequence[tuple[Report, Sequence[GroupTarget]]],
        *,
        now: datetime,
        key_name: str,
        rules_version: str,
    ) -> list[SaveResult]:
        """Store report revisions and add each to its alert groups, in one transaction.

        The same (source, id, revision) again is a duplicate: nothing changes; with other
        content (`resend.resend_differences`) it is a conflict, and nothing changes either.
        A revision lower than the stored one is stale: nothing changes.
        """
        try:
            return await self._save_reports(items, now, key_name, rules_version)
        except IntegrityError:
            # A concurrent request (another connection, on PostgreSQL) stored one of these
            # revisions between our read and our insert: the retry sees it as a duplicate.
            return await self._save_reports(items, now, key_name, rules_version)

    async def save_report(
        self,
        report: Report,
        *,
        targets: Sequence[GroupTarget],
        now: datetime,
        key_name: str,
        rules_version: str,
    ) -> SaveResult:
        (result,) = await self.save_reports(
            [(report, targets)], now=now, key_name=key_name, rules_version=rules_version
        )
        return result

    async def _save_reports(
        self,
        items: Sequence[tuple[Report, Sequence[GroupTarget]]],
        now: datetime,
        key_name: str,
        rules_version: str,
    ) -> list[SaveResult]:
        request = ReportWrite(items, now, key_name, rules_version)
        if self.writer is None:
            if self._commits is None:
                self._commits = ReportCommits(self.engine, self.merge)
            return await self._commits.save(request)
        encoded = await self.writer.call(REPORTS, writes.encode_write(request))
        return writes.decode_results(request, encoded)

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one read transaction: on SQLite in a worker thread on the reader's
        plain connection (one hop, however many statements), elsewhere on the async engine."""
        if self.reader is None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(fn)
        reader = self.reader

        def run() -> T:
            with reader.connect() as conn:
                return fn(conn)

        return await asyncio.to_thread(run)

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a write transaction and return what it returns, once committed.

        On SQLite in the writer process (store/writer.py), which commits the writes that
        arrive together in one transaction; `fn` must pickle (a partial of a module-level
        function). Elsewhere (PostgreSQL) in a transaction of the async engine."""
        if self.writer is None:
            async with self.engine.begin() as conn:
                return await conn.run_sync(fn)
        result: T = await self.writer.call(CALL, fn)
        return result

    async def report_revisions(self, source: str, ext_id: str) -> list[StoredReport]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(reports)
                .where(reports.c.source == source, reports.c.ext_id == ext_id)
                .order_by(reports.c.revision)
            )
            return [_report_from_row(row) for row in rows]

    async def list_incidents(
        self,
        *,
        regions: frozenset[str] | None,
        kind: str | None,
        since: datetime | None,
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[IncidentRow]:
        """Incidents, newest first, with their reports (those of incidents merged into them
        too); `before` is the last one of the previous page (keyset pagination, stable while
        reports arrive)."""
        query = select(incidents).where(incidents.c.merged_into.is_(None))
        if regions is not None:
            query = query.where(incidents.c.region.in_(sorted(regions)))
        if kind is not None:
            query = query.where(incidents.c.kind == kind)
        if since is not None:
            query = query.where(incidents.c.occurred_at >= since)
        if before is not None:
            at, iid = before
            query = query.where(
                (incidents.c.occurred_at < at)
                | ((incidents.c.occurred_at == at) & (incidents.c.id < iid))
            )
        query = query.order_by(incidents.c.occurred_at.desc(), incidents.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            members: dict[str, list[StoredReport]] = {row.id: [] for row in rows}
            if members:
                counted_in = {iid: iid for iid in members}
                for merged in await conn.execute(
                    select(incidents.c.id, incidents.c.merged_into).where(
                        incidents.c.merged_into.in_(list(members))
                    )
                ):
                    counted_in[merged.id] = merged.merged_into
                for r in await conn.execute(
                    select(reports)
                    .where(reports.c.incident_id.in_(list(counted_in)))
                    .order_by(reports.c.pk)
                ):
                    members[counted_in[r.incident_id]].append(_report_from_row(r))
        return [
            IncidentRow(
                id=row.id,
                kind=row.kind,
                region=row.region,
                location=Point(row.lat, row.lon) if row.lat is not None else None,
                occurred_at=row.occurred_at,
                named=row.named,
                reports=tuple(members[row.id]),
            )
            for row in rows
        ]

    async def count_reports(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(reports))).scalar_one())

    # --- rule sets -----------------------------------------------------------------------

    async def record_rule_set(
        self,
        *,
        version: str,
        sha256: str,
        applied_at: datetime,
        how: str,
        files: Mapping[str, str] | None = None,
    ) -> None:
        """Note a rule set applied; `files` (path in the rules folder -> text) keeps what it
        said, each text once however many versions share it, for the desk's diff."""
        row = {"version": version, "sha256": sha256, "applied_at": applied_at, "how": how[:200]}
        await self._write(partial(_record_rule_set, row=row, files=dict(files or {})))

    async def rule_set_history(self, limit: int = 10) -> list[dict[str, Any]]:
        """The rule sets applied most recently, newest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(rule_sets).order_by(rule_sets.c.id.desc()).limit(limit)
            )
            return [
                {
                    "version": r.version,
                    "applied_at": r.applied_at.isoformat(),
                    "how": r.how,
                    "files_kept": bool(r.files),
                }
                for r in rows
            ]

    async def rule_set_files(self, version: str) -> dict[str, str] | None:
        """The files of a rule set version as applied (newest record of it), or None when
        they were not kept (applied before they were)."""

        def read(conn: Connection) -> dict[str, str] | None:
            row = conn.execute(
                select(rule_sets.c.files)
                .where(rule_sets.c.version == version, rule_sets.c.files.is_not(None))
                .order_by(rule_sets.c.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            names: dict[str, str] = _json_object(row.files)
            texts = dict(
                conn.execute(
                    select(rule_files.c.sha256, rule_files.c.text).where(
                        rule_files.c.sha256.in_(sorted(set(names.values())))
                    )
                ).all()
            )
            if not set(names.values()) <= set(texts):
                return None
            return {path: texts[sha] for path, sha in names.items()}

        return await self._read(read)

    # --- the desk ------------------------------------------------------------------------

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        """One incident with every revision of every report that joined it (or an incident
        merged into it); an incident merged into another is that other one."""
        return await self._read(partial(_get_incident, incident_id=incident_id))

    async def map_incidents(
        self,
        *,
        since: datetime,
        regions: frozenset[str] | None,
        kind: str | None,
        limit: int,
    ) -> list[IncidentRow]:
        """Incidents since `since`, newest first, each with every revision of its reports
        (for the desk's map: read in one transaction, off the event loop on SQLite)."""
        return await self._read(
            partial(_map_incidents, since=since, regions=regions, kind=kind, limit=limit)
        )

    async def open_groups(self, limit: int = 500) -> list[OpenGroup]:
        """Open alert groups, latest report first, with what the desk shows of each: when
        it last told its leaders, who acknowledged, its incidents' regions and kinds."""
        return await self._read(partial(_open_groups, limit=limit))

    async def reports_received_since(self, since: datetime, limit: int) -> list[Report]:
        """The newest revision of each report received since `since` (a rules diff's
        replay), oldest first."""

        def read(conn: Connection) -> list[Report]:
            rows = conn.execute(
                select(reports)
                .where(reports.c.received_at >= since)
                .order_by(reports.c.pk.desc())
                .limit(limit)
            ).all()
            newest: dict[tuple[str, str], Report] = {}
            for r in rows:
                newest.setdefault((r.source, r.ext_id), _report_from_row(r).report)
            return list(reversed(newest.values()))

        return await self._read(read)

    # --- alert groups --------------------------------------------------------------------

    async def due_groups(self, now: datetime, limit: int = 200) -> list[GroupRow]:
        """Open groups with something due: an update, a reminder or their closing."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(alert_groups)
                .where(alert_groups.c.next_flush_at <= now, alert_groups.c.closed_at.is_(None))
                .order_by(alert_groups.c.next_flush_at)
                .limit(limit)
            )
            return [_group_from_row(row) for row in rows]

    async def hand_over_groups(
        self, receivers: Mapping[str, tuple[str, Timing]], *, now: datetime, rules_version: str
    ) -> list[HandOver]:
        """Hand every open group whose route `receivers` gives another receiver over to it
        (`writes.hand_over`): the old receiver hears nothing more, a new group holding all
        the old one's reports tells the new one the whole state after the route's
        group_wait. Groups of routes not in `receivers` are left alone. Run when a rule
        set is applied, start-up included; safe with several instances at once."""
        return await self._write(
            partial(
                _hand_over_groups, receivers=dict(receivers), now=now, rules_version=rules_version
            )
        )

    async def get_group(self, group_id: str) -> GroupRow | None:
        return await self._read(lambda conn: _get_group(conn, group_id))

    async def group_reports(self, group_id: str) -> list[Report]:
        """Every revision of every report that joined the group."""
        joined, _ = await self._read(lambda conn: _reports_joined(conn, group_id, None))
        return [report for _, report in joined]

    async def last_update(self, group_id: str) -> tuple[datetime, dict[str, Any]] | None:
        return await self._read(lambda conn: _last_update(conn, group_id))

    async def flush_reads(
        self,
        group_id: str,
        *,
        leader_ids: Sequence[str],
        silences_ending_after: datetime,
        today: tuple[frozenset[str], datetime] | None,
        counted: Counted | None = None,
        told_seq: int | None = None,
    ) -> FlushReads | None:
        """What a flush of the group reads, in one read transaction: the group, the reports
        that joined it (only those after the rows the caller has `counted` already, unless
        those no longer add up), its last update, acknowledgements, current silences, the
        receivers' phones and (for `today`: regions, since) the live incidents there. The
        last update's state is left out if it is update `told_seq` and the reports were not
        read whole. None if the group is gone."""

        def read(conn: Connection) -> FlushReads | None:
            group = _get_group(conn, group_id)
            if group is None:
                return None
            joined, whole = _reports_joined(conn, group_id, counted)
            return FlushReads(
                group=group,
                reports=joined,
                whole=whole,
                last=_flush_last(conn, group_id, None if whole else told_seq),
                acks=_acks(conn, group_id),
                silences=_current_silences(conn, silences_ending_after),
                devices=_active_devices(conn, leader_ids),
                today=_count_live_incidents(conn, *today) if today is not None else None,
            )

        return await self._read(read)

    async def record_update(
        self,
        group: GroupRow,
        *,
        now: datetime,
        summary: dict[str, Any],
        outbox: Sequence[OutboxItem],
        rules_version: str,
        wakeup: datetime | None = None,
        close: bool = False,
        escalate: bool = False,
    ) -> bool:
        """Write update seq+1 of the group (a change, a reminder or, with `close`, its closing
        summary) and queue its pushes, atomically; the group next wakes at `wakeup`.

        The update is claimed with a conditional write on the group's sequence number, so two
        flushers never send the same update twice. A report that joined since the group was
        read is not passed over: the group stays pending, due a group_interval after this
        update (at once for an immediate route). A closing or an escalation is written only
        if nothing at all changed. Returns False if the group moved on; it is then looked at
        again.
        """
        written = await self._write(
            partial(
                _record_update, group=group, now=now, summary=summary, outbox=outbox,
                rules_version=rules_version, lease=None, wakeup=wakeup, close=close,
                escalate=escalate,
            )
        )  # fmt: skip
        return written is not None

    async def record_update_and_claim(
        self,
        group: GroupRow,
        *,
        now: datetime,
        summary: dict[str, Any],
        outbox: Sequence[OutboxItem],
        rules_version: str,
        lease: timedelta,
        wakeup: datetime | None = None,
    ) -> list[PendingPush] | None:
        """`record_update`, with its pushes claimed for the caller to send at once (an
        immediate route): no wait for the next delivery round. None if not claimed."""
        return await self._write(
            partial(
                _record_update, group=group, now=now, summary=summary, outbox=outbox,
                rules_version=rules_version, lease=lease, wakeup=wakeup, close=False,
                escalate=False,
            )
        )  # fmt: skip

    async def record_surge(
        self,
        group: GroupRow,
        *,
        now: datetime,
        summary: dict[str, Any],
        outbox: Sequence[OutboxItem],
        rules_version: str,
        state: SurgeState,
        wakeup: datetime | None,
        close: bool = False,
    ) -> bool:
        """`record_update` for a surge group, with its surge state (open or not, the count
        told) written in the same transaction; `close` closes the group (no pushes then)."""
        written = await self._write(
            partial(
                _record_surge, group=group, now=now, summary=summary, outbox=outbox,
                rules_version=rules_version, state=state, wakeup=wakeup, close=close,
            )
        )  # fmt: skip
        return written is not None

    async def settle(self, group: GroupRow, *, wakeup: datetime | None = None) -> bool:
        """Clear a group's pending change that needs no update (nothing a leader would see);
        the group next wakes at `wakeup` (a reminder or its closing)."""

        return await self._write(partial(_settle, group=group, wakeup=wakeup))

    async def acknowledge(
        self, group_id: str, *, leader_id: str, at: datetime, responding: bool, note: str | None
    ) -> GroupRow | None:
        """Record a leader's acknowledgement and make it the group's next update (due now):
        every leader of the team is told who acknowledged. Reminders stop from the first.
        None if the group does not exist or has closed."""

        return await self._write(
            partial(
                _ack,
                group_id=group_id,
                leader_id=leader_id,
                at=at,
                responding=responding,
                note=note,
            )
        )

    async def get_update(
        self, group_id: str, seq: int, *, leader_id: str
    ) -> tuple[datetime, dict[str, Any]] | None:
        """Update `seq` of a group as recorded, if it was addressed to `leader_id`."""
        async with self.engine.connect() as conn:
            sent_to = exists().where(
                notifications.c.group_id == group_id,
                notifications.c.seq == seq,
                notifications.c.leader_id == leader_id,
            )
            row = (
                await conn.execute(
                    select(group_updates.c.created_at, group_updates.c.summary).where(
                        group_updates.c.group_id == group_id, group_updates.c.seq == seq, sent_to
                    )
                )
            ).first()
            return (row.created_at, dict(row.summary)) if row is not None else None

    async def leader_groups(
        self, *, receivers: Sequence[str], escalated_from: Sequence[str], incident_limit: int
    ) -> list[LeaderGroup]:
        """The open groups of `receivers`, and those of `escalated_from` that escalated,
        newest report first, each with its last update, its `incident_limit` newest
        incidents and its acknowledgements."""
        return await self._read(
            lambda conn: _leader_groups(conn, list(receivers), list(escalated_from), incident_limit)
        )

    async def hold(self, group: GroupRow, *, until: datetime) -> bool:
        """Put off what a group owes its leaders until `until` (a silence's end)."""

        return await self._write(partial(_hold, group=group, until=until))

    async def recent_pushes(
        self, route_ids: Sequence[str], *, since: datetime
    ) -> list[tuple[str, tuple[tuple[str, str], ...], datetime]]:
        """(route, labels, last push) of the groups of these routes that pushed since
        `since`."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    alert_groups.c.route_id, alert_groups.c.labels, alert_groups.c.last_flush_at
                ).where(
                    alert_groups.c.route_id.in_(list(route_ids)),
                    alert_groups.c.last_flush_at >= since,
                )
            )
            return [(r.route_id, _labels(r.labels), r.last_flush_at) for r in rows]

    async def forget(
        self, *, closed_before: datetime, disabled_before: datetime
    ) -> tuple[int, int]:
        """Retention: delete the delivery records of groups closed before `closed_before`
        and the phones disabled before `disabled_before`. Returns (records, phones)."""

        return await self._write(
            partial(_forget, closed_before=closed_before, disabled_before=disabled_before)
        )

    # --- silences ------------------------------------------------------------------------

    async def add_silence(self, silence: Silence, *, key_name: str) -> None:
        await self._write(partial(_add, silence=silence, key_name=key_name))

    async def current_silences(self, *, ending_after: datetime) -> list[Silence]:
        """Silences that end after `ending_after` (active and pending ones, for now)."""
        return await self._read(lambda conn: _current_silences(conn, ending_after))

    async def expire_silence(self, silence_id: str, *, now: datetime) -> Silence | None:
        return await self._write(partial(_expire, silence_id=silence_id, now=now))

    async def acks(self, group_id: str) -> list[Ack]:
        return await self._read(lambda conn: _acks(conn, group_id))

    # --- devices -------------------------------------------------------------------------

    async def register_device(
        self,
        *,
        leader_id: str,
        token: str,
        platform: str,
        locale: str,
        now: datetime,
        key_id: str | None = None,
        p256dh: str | None = None,
        auth: str | None = None,
    ) -> tuple[DeviceRow, bool]:
        """Register a token (or a Web Push endpoint with its keys) for a leader; a token
        seen before moves to this leader (shared phones change hands). `key_id` is the
        database key that registered it (revoking the key disables the phone). Returns the
        device and whether it is new."""

        return await self._write(
            partial(
                _register,
                leader_id=leader_id,
                token=token,
                platform=platform,
                locale=locale,
                now=now,
                key_id=key_id,
                p256dh=p256dh,
                auth=auth,
            )
        )

    async def keep_service_key(self, name: str, value: str, *, now: datetime) -> str:
        """The service key stored under `name`; `value` is stored first if there is none.
        A key once stored is never replaced: what was made with it (Web Push subscriptions
        bound to the VAPID key) would stop working."""
        try:
            return await self._write(partial(_keep_service_key, name=name, value=value, now=now))
        except IntegrityError:
            # Another instance stored its own at the same moment: use that one.
            return await self._write(partial(_keep_service_key, name=name, value=value, now=now))

    async def remove_device(
        self, *, leader_id: str, token: str, now: datetime, reason: str
    ) -> bool:
        """Stop pushing to a leader's token; the row is kept (disabled) for the record."""

        return await self._write(
            partial(_remove, leader_id=leader_id, token=token, now=now, reason=reason)
        )

    async def active_devices(self, leader_ids: Sequence[str]) -> list[DeviceRow]:
        if not leader_ids:
            return []
        return await self._read(lambda conn: _active_devices(conn, leader_ids))

    # --- API keys and pairing codes (store/access.py) ----------------------------------

    async def add_key(
        self,
        *,
        name: str,
        sha256: str,
        scopes: Sequence[str],
        leader_id: str | None,
        now: datetime,
        created_by: str,
    ) -> KeyRow:
        return await self._write(
            partial(
                access.add_key, key_id=access.new_id("key"), name=name, sha256=sha256,
                scopes=list(scopes), leader_id=leader_id, now=now, created_by=created_by,
            )
        )  # fmt: skip

    async def key_by_hash(self, sha256: str) -> KeyRow | None:
        """The stored key with this SHA-256 (revoked or not), or None."""
        return await self._read(partial(access.key_by_hash, sha256=sha256))

    async def list_keys(self) -> list[KeyRow]:
        return await self._read(access.list_keys)

    async def revoke_key(self, key_id: str, *, now: datetime, by: str) -> Revoked | None:
        """Revoke a key: its phones are disabled and their pending pushes not sent."""
        return await self._write(partial(access.revoke_key, key_id=key_id, now=now, by=by))

    async def touch_keys(self, used: dict[str, datetime]) -> None:
        if used:
            await self._write(partial(access.touch_keys, used=dict(used)))

    async def add_pairing(
        self, *, sha256: str, leader_id: str, now: datetime, expires_at: datetime, created_by: str
    ) -> Pairing:
        return await self._write(
            partial(
                access.add_pairing, pairing_id=access.new_id("pair"), sha256=sha256,
                leader_id=leader_id, now=now, expires_at=expires_at, created_by=created_by,
            )
        )  # fmt: skip

    async def redeem_pairing(
        self, *, sha256: str, now: datetime, key_sha256: str, name: str | None
    ) -> tuple[Pairing, KeyRow] | None:
        """Use a pairing code once and make the phone's key; None for a code that is
        unknown, used or expired."""
        return await self._write(
            partial(
                access.redeem, sha256=sha256, now=now, key_id=access.new_id("key"),
                key_sha256=key_sha256, name=name,
            )
        )  # fmt: skip

    # --- outbox --------------------------------------------------------------------------

    async def claim_pushes(
        self, now: datetime, *, lease: timedelta, limit: int = 500
    ) -> list[PendingPush]:
        """Claim the pushes due now for `lease`: another sender (a second instance) skips
        them until the claim runs out, so no push goes out twice. Pushes past their time to
        live are closed as expired instead."""
        return await self._write(partial(_claim, now=now, lease=lease, limit=limit))

    async def deliveries(self, group_id: str) -> list[DeliveryRow]:
        """Every notification of a group, oldest first, with its device."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                _with_devices()
                .where(notifications.c.group_id == group_id)
                .order_by(notifications.c.seq, notifications.c.id)
            )
            return [
                DeliveryRow(
                    id=r.id,
                    seq=r.seq,
                    leader_id=r.leader_id,
                    device_id=r.device_id,
                    token=r.token,
                    platform=r.platform,
                    channel=r.channel,
                    status=r.status,
                    attempts=r.attempts,
                    last_error=r.last_error,
                    message_name=r.message_name,
                    created_at=r.created_at,
                    sent_at=r.sent_at,
                    next_attempt_at=r.next_attempt_at,
                    expires_at=r.expires_at,
                )
                for r in rows
            ]

    async def record_outcomes(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        device_of: dict[int, int | None],
        fallbacks: dict[int, str] | None = None,
    ) -> None:
        """Record what became of each push; a failed push listed in `fallbacks` (its id ->
        a channel) is queued again for its leader on that channel, once per update."""
        await self._write(
            partial(_record_outcomes, outcomes=outcomes, now=now, device_of=device_of,
                    fallbacks=fallbacks or {})
        )  # fmt: skip

    async def notification_counts(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(notifications.c.status, func.count()).group_by(notifications.c.status)
            )
            return {str(status): int(n) for status, n in rows}


# --- reads, run by Store._read --------------------------------------------------------------

GROUP_REPORTS_UP_TO = (
    "SELECT count(*), sum(report_pk) FROM group_reports "
    "WHERE group_id = :group_id AND report_pk <= :top"
)
ACTIVE_DEVICES = (
    "SELECT id, leader_id, token, platform, locale, created_at, updated_at FROM devices "
    "WHERE leader_id IN"
)
# Each in the incident it counts in (its own, or the one that was merged into).
GROUP_REPORTS = (
    f"SELECT {writes.COUNTED_REPORT_COLUMNS} FROM reports "  # noqa: S608 - constants only
    "JOIN group_reports ON group_reports.report_pk = reports.pk "
    "WHERE group_reports.group_id = :group_id"
)
GROUP_REPORTS_AFTER = f"{GROUP_REPORTS} AND group_reports.report_pk > :top"


class HandOver(NamedTuple):
    """An open group handed over to its route's new receiver."""

    old_id: str
    new_id: str
    route_id: str
    old_receiver: str
    new_receiver: str


OPEN_GROUPS = (
    "SELECT id, route_id, group_key, labels, receiver, last_report_at FROM alert_groups "
    "WHERE closed_at IS NULL ORDER BY route_id, group_key"
)


def _hand_over_groups(
    conn: Connection,
    *,
    receivers: dict[str, tuple[str, Timing]],
    now: datetime,
    rules_version: str,
) -> list[HandOver]:
    # In the write path's order of groups: two instances wait for each other, not deadlock.
    sql = writes.Sql(conn)
    moved = []
    for group_id, route_id, group_key, labels, receiver, last_report_at in sql.rows(
        OPEN_GROUPS, {}
    ):
        wanted = receivers.get(route_id)
        if wanted is None or wanted[0] == receiver:
            continue
        new_receiver, timing = wanted
        new_id = writes.hand_over(
            sql, old_id=group_id, route_id=route_id, group_key=group_key,
            labels=writes.labels_json(_labels(_json_list(labels))), receiver=new_receiver,
            timing=timing, now=now, last_report_at=sql.time(last_report_at),
            rules_version=rules_version,
        )  # fmt: skip
        if new_id is not None:  # else another instance handed it over first
            moved.append(HandOver(group_id, new_id, route_id, receiver, new_receiver))
    return moved


def _json_list(raw: Any) -> Any:
    return json.loads(raw) if isinstance(raw, str) else raw


def _get_group(conn: Connection, group_id: str) -> GroupRow | None:
    row = conn.execute(select(alert_groups).where(alert_groups.c.id == group_id)).first()
    return _group_from_row(row) if row is not None else None


def _reports_joined(
    conn: Connection, group_id: str, counted: Counted | None
) -> tuple[list[tuple[int, Report]], bool]:
    """The group's report rows after those `counted`, and whether that is all of them (when
    nothing was counted, or the rows counted no longer add up: see `Counted`). Plain SQL,
    as the write path: a busy group holds thousands of reports, and a flush that read them
    all each time (an immediate route flushes at every critical report) grew with the surge.
    The check runs over the group's primary key inside SQLite or PostgreSQL, not in Python."""
    sql = writes.Sql(conn)
    after: int | None = None  # the highest row counted, if the rows up to it add up
    if counted is not None and counted.rows:
        ((rows, pk_sum),) = sql.rows(
            GROUP_REPORTS_UP_TO, {"group_id": group_id, "top": counted.top}
        )
        if (int(rows), int(pk_sum or 0)) == (counted.rows, counted.pk_sum):
            after = counted.top
    if after is None:
        found = sql.rows(GROUP_REPORTS, {"group_id": group_id})
    else:
        found = sql.rows(GROUP_REPORTS_AFTER, {"group_id": group_id, "top": after})
    stored = (writes.stored_from_row(sql, row) for row in found)
    return [(pk, report) for report, pk, *_ in stored], after is None


def _newest_update(conn: Connection, group_id: str, *columns: Any) -> Any:
    """`columns` of the group's last update, or None."""
    return conn.execute(
        select(*columns)
        .where(group_updates.c.group_id == group_id)
        .order_by(group_updates.c.seq.desc())
        .limit(1)
    ).first()


def _last_update(conn: Connection, group_id: str) -> tuple[datetime, dict[str, Any]] | None:
    row = _newest_update(conn, group_id, group_updates.c.created_at, group_updates.c.summary)
    return (row.created_at, dict(row.summary)) if row is not None else None


def _flush_last(conn: Connection, group_id: str, told_seq: int | None) -> LastUpdate | None:
    last = _newest_update(conn, group_id, group_updates.c.seq, group_updates.c.created_at)
    if last is None:
        return None
    if last.seq == told_seq:
        return LastUpdate(last.seq, last.created_at, None)
    summary = conn.execute(
        select(group_updates.c.summary).where(
            group_updates.c.group_id == group_id, group_updates.c.seq == last.seq
        )
    ).scalar_one()
    return LastUpdate(last.seq, last.created_at, dict(summary.get("state", {})))


def _acks(conn: Connection, group_id: str) -> list[Ack]:
    rows = conn.execute(
        select(group_acks)
        .where(group_acks.c.group_id == group_id)
        .order_by(group_acks.c.at, group_acks.c.id)
    )
    return [Ack(r.leader_id, r.at, r.responding, r.note) for r in rows]


def _leader_groups(
    conn: Connection, receivers: list[str], escalated_from: list[str], incident_limit: int
) -> list[LeaderGroup]:
    rows = conn.execute(
        select(alert_groups).where(
            alert_groups.c.closed_at.is_(None),
            or_(
                alert_groups.c.receiver.in_(receivers),
                and_(
                    alert_groups.c.receiver.in_(escalated_from),
                    alert_groups.c.escalated_at.is_not(None),
                ),
            ),
        )
    ).all()
    groups = sorted(
        (_group_from_row(r) for r in rows),
        key=lambda g: (g.last_report_at or g.created_at or datetime.min.replace(tzinfo=UTC), g.id),
        reverse=True,
    )
    found = []
    for group in groups:
        last = _newest_update(
            conn, group.id, group_updates.c.seq, group_updates.c.created_at,
            group_updates.c.summary,
        )  # fmt: skip
        # The group's newest incidents only: a surge's group holds thousands. A report counts
        # in the incident its own was merged into, if it was (docs/counting.md).
        merged = (
            select(incidents.c.merged_into)
            .where(incidents.c.id == reports.c.incident_id)
            .scalar_subquery()
        )
        counted_in = func.coalesce(merged, reports.c.incident_id)
        in_group = (
            select(counted_in)
            .join(group_reports, group_reports.c.report_pk == reports.c.pk)
            .where(group_reports.c.group_id == group.id, reports.c.incident_id.is_not(None))
        )
        total = conn.execute(
            select(func.count()).select_from(in_group.distinct().subquery())
        ).scalar_one()
        newest = conn.execute(
            select(incidents)
            .where(incidents.c.id.in_(in_group))
            .order_by(incidents.c.occurred_at.desc(), incidents.c.id.desc())
            .limit(incident_limit)
        ).all()
        members: dict[str, list[StoredReport]] = {i.id: [] for i in newest}
        if members:
            for r in conn.execute(
                select(reports, counted_in.label("counted_in"))
                .join(group_reports, group_reports.c.report_pk == reports.c.pk)
                .where(group_reports.c.group_id == group.id, counted_in.in_(list(members)))
                .order_by(reports.c.pk)
            ):
                members[r.counted_in].append(_report_from_row(r))
        held = [
            IncidentRow(
                id=i.id,
                kind=i.kind,
                region=i.region,
                location=Point(i.lat, i.lon) if i.lat is not None else None,
                occurred_at=i.occurred_at,
                named=i.named,
                reports=tuple(members[i.id]),
            )
            for i in newest
        ]
        latest = (last.seq, last.created_at, dict(last.summary)) if last is not None else None
        found.append(LeaderGroup(group, latest, held, int(total), _acks(conn, group.id)))
    return found


def _current_silences(conn: Connection, ending_after: datetime) -> list[Silence]:
    rows = conn.execute(
        select(silences)
        .where(silences.c.ends_at > ending_after)
        .order_by(silences.c.starts_at, silences.c.id)
    )
    return [_silence_from_row(r) for r in rows]


def _active_devices(conn: Connection, leader_ids: Sequence[str]) -> list[DeviceRow]:
    """The phones of these leaders that are not disabled. Plain SQL: a fan-out reads
    thousands, and Core's row processing (two times a row) cost a fan-out dearly
    (docs/performance.md, "Figures behind the code")."""
    if not leader_ids:
        return []
    sql = writes.Sql(conn)
    marks = ", ".join(f":l{i}" for i in range(len(leader_ids)))
    rows = sql.rows(
        f"{ACTIVE_DEVICES} ({marks}) AND disabled_at IS NULL ORDER BY id",
        {f"l{i}": leader for i, leader in enumerate(leader_ids)},
    )
    return [
        DeviceRow(pk, leader, token, platform, locale, _aware(sql, created), _aware(sql, updated))
        for pk, leader, token, platform, locale, created, updated in rows
    ]


def _aware(sql: writes.Sql, value: Any) -> datetime:
    when = sql.time(value)
    assert when is not None
    return when


def _count_live_incidents(conn: Connection, regions: frozenset[str], since: datetime) -> int:
    """Incidents in `regions` that occurred since `since` and that some report still counts
    (its latest revision is not a retraction), counted in the database."""
    newer = reports.alias("newer")
    merged = (
        select(incidents.c.merged_into)
        .where(incidents.c.id == reports.c.incident_id)
        .scalar_subquery()
    )
    counted_in = func.coalesce(merged, reports.c.incident_id)
    query = select(func.count(func.distinct(counted_in))).where(
        reports.c.region.in_(sorted(regions)),
        reports.c.occurred_at >= since,
        reports.c.status != "retracted",
        ~exists().where(
            newer.c.source == reports.c.source,
            newer.c.ext_id == reports.c.ext_id,
            newer.c.revision > reports.c.revision,
        ),
    )
    return int(conn.execute(query).scalar_one())


# --- the outbox's writes, run by Store._write ----------------------------------------------

# A fan-out writes, claims and records thousands of rows at once: plain SQL run as one
# executemany (see writes.py), not a Core expression per row (docs/performance.md).
INSERT_PUSH = (
    "INSERT INTO notifications (group_id, seq, leader_id, device_id, channel, title, body, "
    "data, collapse_key, priority, status, attempts, next_attempt_at, created_at, expires_at, "
    "claimed_until) VALUES (:group_id, :seq, :leader_id, :device_id, :channel, :title, :body, "
    ":data, :collapse_key, :priority, 'pending', 0, :now, :now, :expires_at, :claimed_until)"
)
PENDING = (
    "SELECT n.id, n.group_id, n.seq, n.leader_id, n.device_id, d.token, d.platform, n.channel, "
    "n.title, n.body, n.data, n.collapse_key, n.priority, n.attempts, n.expires_at, "
    "d.p256dh, d.auth FROM notifications n LEFT JOIN devices d ON d.id = n.device_id"
)
NOT_REVOKED = f"(d.disabled_reason IS NULL OR d.disabled_reason <> '{access.KEY_REVOKED}')"
RECORD_OUTCOME = (
    "UPDATE notifications SET status = :status, claimed_until = NULL, attempts = attempts + 1, "
    "next_attempt_at = :next_attempt_at, last_error = :last_error, "
    "message_name = :message_name, sent_at = :sent_at WHERE id = :id"
)


def _record_update(
    conn: Connection,
    group: GroupRow,
    now: datetime,
    summary: dict[str, Any],
    outbox: Sequence[OutboxItem],
    rules_version: str,
    lease: timedelta | None,
    wakeup: datetime | None,
    close: bool,
    escalate: bool,
) -> list[PendingPush] | None:
    """Write update seq+1 of a group and its outbox rows (claimed for `lease` if given);
    None when the group moved on since it was read."""
    seq = group.seq + 1
    pending: Any
    next_flush_at: Any
    if close or escalate:
        where, pending, next_flush_at = _as_read(group), False, None if close else wakeup
    else:
        # Not undone by a report that joined meanwhile: under a steady stream of reports
        # every flush of a busy group would lose that race, and none would be sent.
        joined = alert_groups.c.last_report_at.is_distinct_from(group.last_report_at)
        where = and_(
            alert_groups.c.id == group.id,
            alert_groups.c.seq == group.seq,
            alert_groups.c.closed_at.is_(None),
        )
        pending = case((joined, alert_groups.c.pending), else_=False)
        next_flush_at = case((joined, now + group.group_interval), else_=wakeup)
    claimed = conn.execute(
        update(alert_groups)
        .where(where)
        .values(
            seq=seq,
            pending=pending,
            # An escalation goes to another team: the receiving team's reminders keep time.
            last_flush_at=group.last_flush_at if escalate else now,
            next_flush_at=next_flush_at,
            closed_at=now if close else None,
            escalated_at=now if escalate else group.escalated_at,
        )
    )
    if claimed.rowcount != 1:
        return None
    conn.execute(
        group_updates.insert().values(
            group_id=group.id,
            seq=seq,
            created_at=now,
            summary=summary,
            rules_version=rules_version,
        )
    )
    if not outbox:
        return []
    _supersede(conn, group.id, seq, outbox)
    sql = writes.Sql(conn)
    claimed_until = sql.at(now + lease) if lease is not None else None
    sql.run_many(
        INSERT_PUSH,
        [
            {
                "group_id": group.id,
                "seq": seq,
                "leader_id": item.leader_id,
                "device_id": item.device_id,
                "channel": item.channel,
                "title": item.title,
                "body": item.body,
                "data": json.dumps(item.data, ensure_ascii=False),
                "collapse_key": item.collapse_key,
                "priority": item.priority,
                "now": sql.at(now),
                "expires_at": sql.at(item.expires_at) if item.expires_at else None,
                "claimed_until": claimed_until,
            }
            for item in outbox
        ],
    )
    if lease is None:
        return []
    return _pending(
        sql, "n.group_id = :group_id AND n.seq = :seq", {"group_id": group.id, "seq": seq}
    )


def _record_surge(
    conn: Connection,
    group: GroupRow,
    now: datetime,
    summary: dict[str, Any],
    outbox: Sequence[OutboxItem],
    rules_version: str,
    state: SurgeState,
    wakeup: datetime | None,
    close: bool,
) -> list[PendingPush] | None:
    written = _record_update(
        conn, group, now, summary, outbox, rules_version, None, wakeup, close, False
    )
    if written is not None:
        conn.execute(
            update(alert_groups)
            .where(alert_groups.c.id == group.id)
            .values(surge_open_at=state.open_since, surge_told=state.told)
        )
    return written


def _as_read(group: GroupRow) -> Any:
    """The group is still as `group` read it: open, same update, same pending change, no
    report since."""
    return and_(
        alert_groups.c.id == group.id,
        alert_groups.c.seq == group.seq,
        alert_groups.c.pending == group.pending,
        alert_groups.c.closed_at.is_(None),
        alert_groups.c.last_report_at.is_not_distinct_from(group.last_report_at),
    )


def _supersede(conn: Connection, group_id: str, seq: int, outbox: Sequence[OutboxItem]) -> None:
    """Older updates of the group still pending for the same devices are not sent: the new
    one tells the running count, and a phone shows only the latest of a group."""
    older = and_(
        notifications.c.group_id == group_id,
        notifications.c.seq < seq,
        notifications.c.status == "pending",
    )
    values = {
        "status": "superseded",
        "last_error": f"superseded by update {seq}",
        "claimed_until": None,
    }
    device_ids = [i.device_id for i in outbox if i.device_id is not None]
    if device_ids:
        conn.execute(
            update(notifications)
            .where(older, notifications.c.device_id.in_(device_ids))
            .values(**values)
        )
    deviceless = [i.leader_id for i in outbox if i.device_id is None]
    if deviceless:
        conn.execute(
            update(notifications)
            .where(
                older,
                notifications.c.device_id.is_(None),
                notifications.c.leader_id.in_(deviceless),
            )
            .values(**values)
        )


def _claim(conn: Connection, now: datetime, lease: timedelta, limit: int) -> list[PendingPush]:
    unclaimed = or_(notifications.c.claimed_until.is_(None), notifications.c.claimed_until <= now)
    access.stop_revoked(
        conn,
        due=and_(
            notifications.c.status == "pending", notifications.c.next_attempt_at <= now, unclaimed
        ),
    )
    conn.execute(
        update(notifications)
        .where(
            notifications.c.status == "pending",
            notifications.c.expires_at.is_not(None),
            notifications.c.expires_at <= now,
            unclaimed,
        )
        .values(status="expired", claimed_until=None, last_error="not sent within its time to live")
    )
    ids = list(
        conn.execute(
            select(notifications.c.id)
            .where(
                notifications.c.status == "pending",
                notifications.c.next_attempt_at <= now,
                unclaimed,
            )
            .order_by(notifications.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer
        ).scalars()
    )
    if not ids:
        return []
    conn.execute(
        update(notifications).where(notifications.c.id.in_(ids)).values(claimed_until=now + lease)
    )
    sql = writes.Sql(conn)
    marks = ", ".join(f":i{n}" for n in range(len(ids)))
    return _pending(sql, f"n.id IN ({marks})", {f"i{n}": i for n, i in enumerate(ids)})


def _with_devices() -> Any:
    """Outbox rows with their device's token and platform (none for a fallback channel)."""
    return select(notifications, devices.c.token, devices.c.platform).outerjoin(
        devices, devices.c.id == notifications.c.device_id
    )


def _pending(sql: writes.Sql, where: str, params: dict[str, Any]) -> list[PendingPush]:
    """Outbox rows as senders need them, with their device's token and platform. PENDING's
    columns are PendingPush's fields, in order. The rows of one update share their data
    and expiry, so each distinct value is decoded once."""
    # A phone whose key was revoked since the row was written gets nothing (the claim
    # closes such rows as failed once this claim runs out).
    rows = sql.rows(f"{PENDING} WHERE ({where}) AND {NOT_REVOKED} ORDER BY n.id", params)
    datas: dict[Any, dict[str, Any]] = {}
    times: dict[Any, datetime | None] = {}

    def data_of(raw: Any) -> dict[str, Any]:
        if not isinstance(raw, str):
            return dict(raw)
        if raw not in datas:
            datas[raw] = _json_object(raw)
        return dict(datas[raw])

    def time_of(raw: Any) -> datetime | None:
        if raw not in times:
            times[raw] = sql.time(raw)
        return times[raw]

    return [
        PendingPush(pk, group_id, seq, leader, device, token, platform, channel, title, body,
                    data_of(data), collapse_key, priority, attempts, time_of(expires_at),
                    p256dh, auth)
        for (pk, group_id, seq, leader, device, token, platform, channel, title, body, data,
             collapse_key, priority, attempts, expires_at, p256dh, auth) in rows
    ]  # fmt: skip


def _json_object(value: Any) -> dict[str, Any]:
    """A JSON column read with plain SQL: text on SQLite (and asyncpg), a dict otherwise."""
    return json.loads(value) if isinstance(value, str) else dict(value)


def _record_outcomes(
    conn: Connection,
    outcomes: Sequence[Outcome],
    now: datetime,
    device_of: dict[int, int | None],
    fallbacks: dict[int, str],
) -> None:
    sql = writes.Sql(conn)
    sent_at = sql.at(now)
    sql.run_many(
        RECORD_OUTCOME,
        [
            {
                "id": o.id,
                "status": o.status,
                "next_attempt_at": sql.at(o.next_attempt_at) if o.next_attempt_at else None,
                "last_error": o.error,
                "message_name": o.message_name if o.status == "sent" else None,
                "sent_at": sent_at if o.status == "sent" else None,
            }
            for o in outcomes
        ],
    )
    for o in outcomes:
        device_id = device_of.get(o.id)
        if o.disable_device and device_id is not None:
            conn.execute(
                update(devices)
                .where(and_(devices.c.id == device_id, devices.c.disabled_at.is_(None)))
                .values(disabled_at=now, disabled_reason=(o.error or "")[:200])
            )
    for notification_id, channel in fallbacks.items():
        _queue_fallback(conn, notification_id, channel, now)


def _queue_fallback(conn: Connection, notification_id: int, channel: str, now: datetime) -> None:
    """The same update for the same leader on `channel`, unless already queued there (a
    leader with two failing phones gets one SMS)."""
    failed = conn.execute(select(notifications).where(notifications.c.id == notification_id)).one()
    already = conn.execute(
        select(notifications.c.id).where(
            notifications.c.group_id == failed.group_id,
            notifications.c.seq == failed.seq,
            notifications.c.leader_id == failed.leader_id,
            notifications.c.channel == channel,
        )
    ).first()
    if already is not None:
        return
    conn.execute(
        notifications.insert().values(
            group_id=failed.group_id,
            seq=failed.seq,
            leader_id=failed.leader_id,
            device_id=None,
            channel=channel,
            title=failed.title,
            body=failed.body,
            data=failed.data,
            collapse_key=failed.collapse_key,
            priority=failed.priority,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            expires_at=failed.expires_at,
            last_error=f"fallback for push {notification_id}",
        )
    )


# --- writes, as plain functions of a connection (the writer process runs them) ------


def _insert(conn: Connection, table: Table, row: dict[str, Any]) -> None:
    conn.execute(table.insert().values(**row))


def _settle(conn: Connection, *, group: GroupRow, wakeup: datetime | None) -> bool:
    result = conn.execute(
        update(alert_groups).where(_as_read(group)).values(pending=False, next_flush_at=wakeup)
    )
    return result.rowcount == 1


def _ack(
    conn: Connection,
    *,
    group_id: str,
    leader_id: str,
    at: datetime,
    responding: bool,
    note: str | None,
) -> GroupRow | None:
    row = conn.execute(select(alert_groups).where(alert_groups.c.id == group_id)).first()
    if row is None or row.closed_at is not None:
        return None
    conn.execute(
        group_acks.insert().values(
            group_id=group_id,
            leader_id=leader_id,
            at=at,
            responding=responding,
            note=note,
        )
    )
    due = at if not row.pending or row.next_flush_at is None else min(row.next_flush_at, at)
    conn.execute(
        update(alert_groups)
        .where(alert_groups.c.id == group_id)
        .values(pending=True, next_flush_at=due, acked_at=row.acked_at or at)
    )
    return _group_from_row(
        conn.execute(select(alert_groups).where(alert_groups.c.id == group_id)).one()
    )


def _hold(conn: Connection, *, group: GroupRow, until: datetime) -> bool:
    result = conn.execute(update(alert_groups).where(_as_read(group)).values(next_flush_at=until))
    return result.rowcount == 1


def _forget(
    conn: Connection, *, closed_before: datetime, disabled_before: datetime
) -> tuple[int, int]:
    old_groups = select(alert_groups.c.id).where(
        alert_groups.c.closed_at.is_not(None), alert_groups.c.closed_at < closed_before
    )
    records = conn.execute(
        notifications.delete().where(notifications.c.group_id.in_(old_groups))
    ).rowcount
    old_devices = select(devices.c.id).where(
        devices.c.disabled_at.is_not(None), devices.c.disabled_at < disabled_before
    )
    conn.execute(
        update(notifications)
        .where(notifications.c.device_id.in_(old_devices))
        .values(device_id=None)
    )
    phones = conn.execute(devices.delete().where(devices.c.id.in_(old_devices))).rowcount
    return int(records), int(phones)


def _add(conn: Connection, *, silence: Silence, key_name: str) -> None:
    conn.execute(
        silences.insert().values(
            id=silence.id,
            matchers={name: sorted(getattr(silence, name)) for name in MATCHERS},
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            author=silence.author,
            reason=silence.reason,
            created_at=silence.created_at,
            created_by_key=key_name,
        )
    )


def _expire(conn: Connection, *, silence_id: str, now: datetime) -> Silence | None:
    row = conn.execute(select(silences).where(silences.c.id == silence_id)).first()
    if row is None:
        return None
    if row.ends_at > now:
        conn.execute(update(silences).where(silences.c.id == silence_id).values(ends_at=now))
        # Groups this silence was holding (until its old end) are told now.
        conn.execute(
            update(alert_groups)
            .where(
                alert_groups.c.closed_at.is_(None),
                alert_groups.c.next_flush_at == row.ends_at,
            )
            .values(next_flush_at=now)
        )
        row = conn.execute(select(silences).where(silences.c.id == silence_id)).one()
    return _silence_from_row(row)


def _register(
    conn: Connection,
    *,
    leader_id: str,
    token: str,
    platform: str,
    locale: str,
    now: datetime,
    key_id: str | None = None,
    p256dh: str | None = None,
    auth: str | None = None,
) -> tuple[DeviceRow, bool]:
    row = conn.execute(select(devices).where(devices.c.token == token)).first()
    if row is None:
        result = conn.execute(
            devices.insert().values(
                leader_id=leader_id,
                token=token,
                platform=platform,
                locale=locale,
                created_at=now,
                updated_at=now,
                key_id=key_id,
                p256dh=p256dh,
                auth=auth,
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        device = DeviceRow(int(pk[0]), leader_id, token, platform, locale, now, now, p256dh, auth)
        return device, True
    conn.execute(
        update(devices)
        .where(devices.c.id == row.id)
        .values(
            leader_id=leader_id,
            platform=platform,
            locale=locale,
            updated_at=now,
            disabled_at=None,
            disabled_reason=None,
            key_id=key_id,
            p256dh=p256dh,
            auth=auth,
        )
    )
    device = DeviceRow(row.id, leader_id, token, platform, locale, row.created_at, now, p256dh,
                       auth)  # fmt: skip
    return device, False


def _keep_service_key(conn: Connection, *, name: str, value: str, now: datetime) -> str:
    stored = conn.execute(
        select(service_keys.c.value).where(service_keys.c.name == name)
    ).scalar_one_or_none()
    if stored is not None:
        return str(stored)
    conn.execute(service_keys.insert().values(name=name, value=value, created_at=now))
    return value


def _remove(conn: Connection, *, leader_id: str, token: str, now: datetime, reason: str) -> bool:
    result = conn.execute(
        update(devices)
        .where(
            devices.c.token == token,
            devices.c.leader_id == leader_id,
            devices.c.disabled_at.is_(None),
        )
        .values(disabled_at=now, disabled_reason=reason)
    )
    return result.rowcount == 1


def _record_rule_set(conn: Connection, *, row: dict[str, Any], files: dict[str, str]) -> None:
    names: dict[str, str] = {}
    for path, content in sorted(files.items()):
        sha = hashlib.sha256(content.encode()).hexdigest()
        names[path] = sha
        held = conn.execute(select(rule_files.c.sha256).where(rule_files.c.sha256 == sha))
        if held.first() is None:
            conn.execute(rule_files.insert().values(sha256=sha, text=content))
    # SQL NULL when none were kept (a JSON column would store None as the JSON null).
    conn.execute(rule_sets.insert().values(**row, files=names or null()))


def _open_groups(conn: Connection, *, limit: int) -> list[OpenGroup]:
    groups = [
        _group_from_row(r)
        for r in conn.execute(
            select(alert_groups)
            .where(alert_groups.c.closed_at.is_(None))
            .order_by(alert_groups.c.last_report_at.desc(), alert_groups.c.id)
            .limit(limit)
        )
    ]
    ids = [g.id for g in groups]
    if not ids:
        return []
    last = dict(
        conn.execute(
            select(group_updates.c.group_id, func.max(group_updates.c.created_at))
            .where(group_updates.c.group_id.in_(ids))
            .group_by(group_updates.c.group_id)
        ).all()
    )
    acks: dict[str, list[Ack]] = {}
    for a in conn.execute(
        select(group_acks).where(group_acks.c.group_id.in_(ids)).order_by(group_acks.c.id)
    ):
        acks.setdefault(a.group_id, []).append(Ack(a.leader_id, a.at, a.responding, a.note))
    seen: dict[str, tuple[set[str], set[str], int]] = {i: (set(), set(), 0) for i in ids}
    for group_id, region, kind, n in conn.execute(
        select(group_reports.c.group_id, reports.c.region, reports.c.kind, func.count())
        .join(reports, reports.c.pk == group_reports.c.report_pk)
        .where(group_reports.c.group_id.in_(ids))
        .group_by(group_reports.c.group_id, reports.c.region, reports.c.kind)
    ):
        regions, kinds, total = seen[group_id]
        regions.add(region)
        kinds.add(kind)
        seen[group_id] = (regions, kinds, total + int(n))
    return [
        OpenGroup(
            group=g,
            last_update_at=_as_utc(last.get(g.id)),
            acks=tuple(acks.get(g.id, ())),
            regions=tuple(sorted(seen[g.id][0])),
            kinds=tuple(sorted(seen[g.id][1])),
            reports=seen[g.id][2],
        )
        for g in groups
    ]


def _as_utc(value: Any) -> datetime | None:
    """A time from an aggregate (which skips the column's type): aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


MAP_INCIDENTS = (
    "SELECT id, kind, region, lat, lon, occurred_at, named FROM incidents "
    "WHERE occurred_at >= :since AND merged_into IS NULL{where} "
    "ORDER BY occurred_at DESC, id DESC LIMIT :limit"
)


class _IncidentHead(NamedTuple):
    id: str
    kind: str
    region: str
    lat: float | None
    lon: float | None
    occurred_at: datetime
    named: bool


def _map_incidents(
    conn: Connection,
    *,
    since: datetime,
    regions: frozenset[str] | None,
    kind: str | None,
    limit: int,
) -> list[IncidentRow]:
    sql = writes.Sql(conn)
    where = ""
    params: dict[str, Any] = {"since": sql.at(since), "limit": limit}
    if kind is not None:
        where += " AND kind = :kind"
        params["kind"] = kind
    if regions is not None:
        marks, named = _in("r", sorted(regions))
        where += f" AND region IN {marks}"
        params.update(named)
    heads = []
    for iid, k, region, lat, lon, occurred_at, is_named in sql.rows(
        MAP_INCIDENTS.format(where=where), params
    ):
        occurred = sql.time(occurred_at)
        assert occurred is not None
        heads.append(_IncidentHead(iid, k, region, lat, lon, occurred, bool(is_named)))
    return _with_reports(conn, heads)


def _get_incident(conn: Connection, *, incident_id: str) -> IncidentRow | None:
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    for _ in range(10):  # an incident merged into another: that one (no chain is longer)
        if row is None or row.merged_into is None:
            break
        row = conn.execute(select(incidents).where(incidents.c.id == row.merged_into)).first()
    return None if row is None else _with_reports(conn, [row])[0]


def _in(name: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    """`(:name0, :name1, ...)` and its parameters."""
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(f":{p}" for p in params) + ")", params


def _with_reports(conn: Connection, rows: Sequence[Any]) -> list[IncidentRow]:
    """Incident rows with every revision of their reports and of the reports of incidents
    merged into them (as list_incidents), read as plain rows: a surge day's thousands of
    reports cost a fraction of what mapped rows do."""
    sql = writes.Sql(conn)
    members: dict[str, list[StoredReport]] = {row.id: [] for row in rows}
    counted_in = {iid: iid for iid in members}
    ids = list(members)
    for start in range(0, len(ids), 500):
        marks, params = _in("i", ids[start : start + 500])
        merged = sql.rows(f"SELECT id, merged_into FROM incidents WHERE merged_into IN {marks}",  # noqa: S608 - placeholders only
                          params)  # fmt: skip
        counted_in.update({mid: into for mid, into in merged})
    every = list(counted_in)
    for start in range(0, len(every), 500):
        marks, params = _in("i", every[start : start + 500])
        for found in sql.rows(
            f"SELECT {writes.REPORT_COLUMNS} FROM reports WHERE incident_id IN {marks}",  # noqa: S608 - placeholders only
            params,
        ):
            report, pk, received, key_name, rules_version = writes.stored_from_row(sql, found)
            assert report.incident is not None
            members[counted_in[report.incident]].append(
                StoredReport(report, pk, received, key_name, rules_version)
            )
    return [
        IncidentRow(
            id=row.id,
            kind=row.kind,
            region=row.region,
            location=Point(row.lat, row.lon) if row.lat is not None else None,
            occurred_at=row.occurred_at,
            named=row.named,
            reports=tuple(sorted(members[row.id], key=lambda r: r.pk)),
        )
        for row in rows
    ]
