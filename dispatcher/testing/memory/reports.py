"""Reports and incidents in memory (`ReportStore`): a request's reports decided in order,
as the write path decides them, and the reads of what was stored.

The decisions are the pure modules', as in `report_writer.ReportWriter`: a resend of a held
revision is a duplicate or (`resend.resend_differences`) a conflict, an older revision
never seen is stale; a new revision stays with its incident, joins the one it names, or
(`incidents.pick` over an `IncidentIndex` of every incident) the one nearby, and an
own-tier report gathers the observers' incidents round it (`incidents.absorbs`); the
groups it joins open, wait and hand over as `group.first_flush` and
`group.next_flush_after_report` say. tests/contract/ holds both to one contract.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from dispatcher.group import GroupTarget, first_flush, next_flush_after_report
from dispatcher.incidents import absorbs, pick
from dispatcher.model import Report
from dispatcher.resend import resend_differences
from dispatcher.store.report_row import StoredReport
from dispatcher.store.rows import GroupRow, IncidentRow
from dispatcher.store.writer_wire import SaveResult
from dispatcher.testing.memory.admin import Room
from dispatcher.testing.memory.tables import Incident, Tables, aware


class MemoryReports(Room):
    """`ReportStore` (store/ports.py) in memory."""

    async def save_reports(
        self,
        items: Sequence[tuple[Report, Sequence[GroupTarget]]],
        *,
        now: datetime,
        key_name: str,
        rules_version: str,
    ) -> list[SaveResult]:
        t = self.t
        aware(now)
        # A merge recounts the groups of reports stored before this request, not its own.
        made: set[str] = set()  # incidents made by this request
        start = max(t.reports, default=0) + 1
        opened: dict[tuple[str, str], str] = {}  # groups this request opened or touched
        out = []
        for report, targets in items:
            revs = t.revisions.get((report.source, report.id), {})
            if revs and max(revs) >= report.revision:
                newest = t.reports[revs[max(revs)]]
                same_pk = revs.get(report.revision)
                if same_pk is None:
                    out.append(SaveResult("stale", _held(newest)))
                    continue
                same = t.reports[same_pk]
                differences = tuple(resend_differences(report, same.report, same.report.incident))
                if differences:
                    out.append(SaveResult("conflict", _held(same), differences=differences,
                                          newest=newest.report.revision))  # fmt: skip
                else:
                    out.append(SaveResult("duplicate", _held(same)))
                continue
            latest = t.reports[revs[max(revs)]].report.incident if revs else None
            incident, merged = _incident(t, report, latest, (made, start))
            pk = next(t.report_pks)
            stored = StoredReport(report._replace(incident=incident), pk, now, key_name,
                                  rules_version)  # fmt: skip
            t.reports[pk] = stored
            t.revisions.setdefault((report.source, report.id), {})[report.revision] = pk
            group_ids = []
            for target in targets:
                key = (target.route_id, target.group_key)  # as the table's unique index
                group_id = opened.get(key)
                if group_id is None:
                    group_id = opened[key] = _write_group(t, target, now, rules_version)
                t.joined[group_id].append((pk, now))
                group_ids.append(group_id)
            out.append(SaveResult("created", stored, tuple(group_ids), merged))
        return out

    async def report_revisions(self, source: str, ext_id: str) -> list[StoredReport]:
        revs = self.t.revisions.get((source, ext_id), {})
        return [self.t.as_read(revs[rev]) for rev in sorted(revs)]

    async def list_incidents(
        self,
        *,
        regions: frozenset[str] | None,
        kind: str | None,
        since: datetime | None,
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[IncidentRow]:
        found = [
            i for i in _newest_first(self.t, regions, kind, since)
            if before is None or (i.occurred_at, i.id) < before
        ]  # fmt: skip
        return [incident_row(self.t, i) for i in found[:limit]]

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        incident = self.t.incidents.get(incident_id)
        for _ in range(10):  # an incident merged into another: that one
            if incident is None or incident.merged_into is None:
                break
            incident = self.t.incidents.get(incident.merged_into)
        return None if incident is None else incident_row(self.t, incident)

    async def map_incidents(
        self, *, since: datetime, regions: frozenset[str] | None, kind: str | None, limit: int
    ) -> list[IncidentRow]:
        found = _newest_first(self.t, regions, kind, since)
        return [incident_row(self.t, i) for i in found[:limit]]

    async def reports_received_since(self, since: datetime, limit: int) -> list[Report]:
        rows = [pk for pk in sorted(self.t.reports, reverse=True)
                if self.t.reports[pk].received_at >= since][:limit]  # fmt: skip
        newest: dict[tuple[str, str], Report] = {}
        for pk in rows:
            report = self.t.as_read(pk).report
            newest.setdefault((report.source, report.id), report)
        return list(reversed(newest.values()))


def _held(stored: StoredReport) -> StoredReport:
    """A held revision as a save answers with it (without when it was received)."""
    return replace(stored, report=stored.report._replace(received_at=None))


def _newest_first(
    t: Tables, regions: frozenset[str] | None, kind: str | None, since: datetime | None
) -> list[Incident]:
    found = [
        i for i in t.incidents.values()
        if i.merged_into is None and (regions is None or i.region in regions)
        and (kind is None or i.kind == kind) and (since is None or i.occurred_at >= since)
    ]  # fmt: skip
    return sorted(found, key=lambda i: (i.occurred_at, i.id), reverse=True)


def incident_row(t: Tables, incident: Incident, pks: Iterable[int] | None = None) -> IncidentRow:
    """An incident with every revision of its reports (and of incidents merged into it),
    oldest row first; of `pks` only, if given."""
    wanted = set(t.reports if pks is None else pks)
    members = tuple(
        t.as_read(pk) for pk in sorted(wanted)
        if t.counted_in(t.reports[pk].report.incident) == incident.id
    )  # fmt: skip
    return IncidentRow(incident.id, incident.kind, incident.region, incident.location,
                       incident.occurred_at, incident.named, members)  # fmt: skip


def _incident(
    t: Tables, report: Report, latest: str | None, made: tuple[set[str], int]
) -> tuple[str, bool]:
    """The incident a new revision belongs to, and whether it joined another report's.
    `made`: the incidents this request made, and its first report's row."""
    if report.incident is not None:
        if report.incident not in t.incidents:
            return _make(t, report, report.incident, made[0], named=True), False
        t.index.join(report.incident, report.source, anchors=report.tier == "own")
        return report.incident, True
    if latest is not None:
        return latest, False  # a revision stays with its incident
    if report.location is not None:
        chosen = pick(report, t.index.candidates(report), t.merge)
        if chosen is not None:
            t.index.join(chosen, report.source, anchors=report.tier == "own")
            if report.tier == "own":
                _absorb(t, report, chosen, made)
            return chosen, True
    made_id = f"{next(t.incident_ids):016x}{secrets.token_hex(8)}"
    _make(t, report, made_id, made[0], named=False)
    if report.tier == "own" and report.location is not None:
        _absorb(t, report, made_id, made)
    return made_id, False


def _make(t: Tables, report: Report, incident_id: str, made: set[str], *, named: bool) -> str:
    t.incidents[incident_id] = Incident(incident_id, report.kind, report.region,
                                        report.location, report.occurred_at, named)  # fmt: skip
    made.add(incident_id)
    if report.location is not None:
        t.index.add(incident_id, report.kind, report.location, report.occurred_at,
                    (report.source,), report.tier == "own")  # fmt: skip
    return incident_id


def _absorb(t: Tables, report: Report, into: str, made: tuple[set[str], int]) -> None:
    """Merge into `into` the incidents an own-tier report gathers; the open groups holding
    reports of one stored before this request count again at their next flush."""
    made_here, start = made
    sources = t.index.sources_of(into) or ()
    for absorbed in absorbs(report, into, sources, t.index.around(report), t.merge):
        t.incidents[absorbed].merged_into = into
        t.index.remove(absorbed)
        if absorbed in made_here:
            continue
        for gid, group in t.groups.items():
            held = {t.reports[pk].report.incident for pk, _ in t.joined[gid] if pk < start}
            if group.closed_at is None and absorbed in held:
                t.groups[gid] = replace(group, recount=group.recount + 1)


def _open_group(t: Tables, target: GroupTarget) -> GroupRow | None:
    labels = tuple(map(tuple, target.labels))
    return next(
        (g for g in t.groups.values()
         if g.closed_at is None and g.route_id == target.route_id and g.labels == labels),
        None,
    )  # fmt: skip


def _write_group(t: Tables, target: GroupTarget, now: datetime, rules_version: str) -> str:
    """Open the target's group, hand it over to the target's receiver, or set its timer."""
    timing = target.timing
    group = _open_group(t, target)
    if group is None:
        return new_group(t, target, now=now, last_report_at=now, rules_version=rules_version)
    if group.receiver != target.receiver:
        return hand_over(t, group, target, now=now, last_report_at=now,
                         rules_version=rules_version)  # fmt: skip
    due = next_flush_after_report(
        now=now, timing=timing, pending=group.pending, next_flush_at=group.next_flush_at,
        last_flush_at=group.last_flush_at,
    )  # fmt: skip
    t.groups[group.id] = replace(
        group, pending=True, next_flush_at=due, last_report_at=now,
        repeat_interval=timing.repeat_interval, close_after=timing.close_after,
    )  # fmt: skip
    return group.id


def new_group(
    t: Tables,
    target: GroupTarget,
    *,
    now: datetime,
    last_report_at: datetime | None,
    rules_version: str,
    took_over_from: str | None = None,
) -> str:
    timing = target.timing
    group_id = secrets.token_hex(16)
    t.groups[group_id] = GroupRow(
        id=group_id, route_id=target.route_id, labels=target.labels, receiver=target.receiver,
        seq=0, pending=True, next_flush_at=first_flush(now, timing), last_flush_at=None,
        rules_version=rules_version, last_report_at=last_report_at,
        repeat_interval=timing.repeat_interval, close_after=timing.close_after,
        created_at=now, escalate_after=timing.escalate_after,
        group_interval=timing.group_interval, took_over_from=took_over_from,
    )  # fmt: skip
    t.joined[group_id] = []
    return group_id


def hand_over(
    t: Tables,
    old: GroupRow,
    target: GroupTarget,
    *,
    now: datetime,
    last_report_at: datetime | None,
    rules_version: str,
) -> str:
    """Close `old` without a word and open its successor for the target's receiver, with
    every report `old` holds; `old`'s pushes not yet sent are not sent."""
    reason = f"receiver changed to {target.receiver}"
    new_id = new_group(t, target, now=now, last_report_at=last_report_at,
                       rules_version=rules_version, took_over_from=old.id)  # fmt: skip
    t.groups[old.id] = replace(old, closed_at=now, pending=False, next_flush_at=None,
                               closed_reason=reason, handed_over_to=new_id)  # fmt: skip
    t.joined[new_id] = list(t.joined[old.id])
    for push in t.pushes.values():
        if push.group_id == old.id and push.status == "pending":
            push.status, push.last_error = "superseded", f"{reason}: not sent"
            push.claimed_until = None
    return new_id
