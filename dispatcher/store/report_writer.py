"""Report writes within one transaction: each report decided, then the rows of all written.

This is the hottest code in the service (a surge is thousands of reports a second). A
transaction's reports are decided in Python and their rows written together, a few INSERT
statements a table: their revisions are looked up in one query (store/report_sql.py), the
incidents they may join come from the SQLite writer's memory (store/incident_memory.py) or
the table (store/incident_lookup.py), and each alert group they join is read and written
once (store/report_groups.py). The decisions are pure and apart: a resend's answer
(`held_answer`), which incident a report joins or absorbs (`incidents.pick`,
`incidents.absorbs`), when a group is due (`group.next_flush_after_report`).

What a SQLite commit costs is mostly the pages it dirties, so every index that rows are
added to grows at one end where it can: incident ids begin with the time, and SQLite keeps
no spatial index of incidents (the writer's memory answers the merge lookup).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dispatcher.incidents import Candidate, IncidentIndex, MergeRule, absorbs, pick
from dispatcher.model import Report
from dispatcher.resend import resend_differences
from dispatcher.store import report_row
from dispatcher.store.dbapi import Sql
from dispatcher.store.incident_lookup import Key, look_up_many, stored_around, stored_candidates
from dispatcher.store.report_groups import Joined, OpenGroups, open_group, write_group
from dispatcher.store.report_sql import (
    INCIDENT_EXISTS,
    INCIDENT_INSERT_COLUMNS,
    JOIN_INSERT_COLUMNS,
    MERGE_INCIDENT,
    RECOUNT_GROUPS,
    REPORT_INSERT_COLUMNS,
    next_pks,
    revisions,
)
from dispatcher.store.writer_wire import (
    CONFLICT,
    CREATED,
    DUPLICATE,
    STALE,
    Held,
    ReportWrite,
    SaveResult,
    decode_results,
    held_result,
    renamed,
)

log = logging.getLogger("dispatcher.store")


def held_answer(report: Report, revs: Mapping[int, Held], newest: int) -> tuple[int, Held] | None:
    """What to answer `report` when revisions `revs` of its (source, id) are held, the
    newest `newest`: None for a new revision (to be written), else the answer's tag and the
    revision it shows. A retry of a revision held (even an old one, delayed by a bad link)
    is a duplicate, unless it says something else (a conflict: a correction is a new
    revision); an older revision never seen is stale."""
    if report.revision > newest:
        return None
    same = revs.get(report.revision)
    if same is None:
        return STALE, revs[newest]
    if resend_differences(report, same[0], same[1]):
        return CONFLICT, same
    return DUPLICATE, same


def new_incident_prefix() -> str:
    """The first 24 of an incident id's 32 hex digits, one per transaction: milliseconds
    since 1970, then 48 random bits; a count within the transaction follows. Ids that grow
    with time are added at the end of the incidents' index instead of all over it."""
    return f"{time.time_ns() // 1_000_000 & (16**12 - 1):012x}{secrets.token_hex(6)}"


@dataclass(slots=True)
class ReportWriter:
    """Writes reports within one transaction; one per transaction.

    `save` decides each report in order (duplicate, stale, or a new revision with its
    incident and groups) and then writes the rows of all of them, so a later `save` or any
    other statement in the transaction sees them. Incidents made or joined here go straight
    into the SQLite writer's memory when it holds their time (the writer reads it again
    after a failed commit); the others are kept here until the commit, since the merge
    lookup in SQL cannot see them yet.
    """

    sql: Sql
    merge: MergeRule
    memory: IncidentIndex | None = None  # SQLite: the writer's memory of committed incidents
    # SQLite: open groups as the writer left them, (route, labels) -> (id, pending,
    # next_flush_at, last_flush_at, receiver), kept while nothing else writes to alert
    # groups (a CALL job, such as a hand-over after a rules edit, clears it).
    open_groups: OpenGroups | None = None
    fresh: IncidentIndex = field(init=False)  # incidents made here that memory does not hold
    joined: dict[str, set[str]] = field(default_factory=dict)  # committed ones joined, by whom
    made: set[str] = field(default_factory=set)  # ids of the incidents made here
    anchored: set[str] = field(default_factory=set)  # committed ones an own report joined here

    _incident_rows: list[tuple[Any, ...]] = field(default_factory=list)
    # PostgreSQL: committed candidates of the transaction's new reports, looked up at once.
    _looked_up: dict[Key, list[Candidate]] = field(default_factory=dict)
    _id_prefix: str = field(init=False)
    _count: int = 0

    def __post_init__(self) -> None:
        self.fresh = IncidentIndex(self.merge, since=datetime.min.replace(tzinfo=UTC))
        self._id_prefix = new_incident_prefix()

    def save(self, requests: Sequence[ReportWrite]) -> list[list[SaveResult]]:
        """Each request's results (`save_wire`, decoded)."""
        return [
            decode_results(w, r) for w, r in zip(requests, self.save_wire(requests), strict=True)
        ]

    def save_wire(self, requests: Sequence[ReportWrite]) -> list[list[tuple[Any, ...]]]:
        """Decide and write the reports of `requests`; each request's results in their wire
        form (`decode_results` turns them into `SaveResult`s)."""
        sql = self.sql
        # (source, id) -> revision -> (report, incident, pk, received_at, key, rules version)
        held: dict[tuple[str, str], dict[int, Held]] = {}
        keys = list({(r.source, r.id): None for w in requests for r, _ in w.items})
        for row in revisions(sql, keys):
            s = report_row.stored(row)
            entry = (s.report, s.report.incident, s.pk, s.received_at, s.key_name, s.rules_version)
            held.setdefault((s.report.source, s.report.id), {})[s.report.revision] = entry
        if self.memory is None and not sql.sqlite:
            self._looked_up = look_up_many(
                sql,
                self.merge,
                (r for w in requests for r, _ in w.items if (r.source, r.id) not in held),
            )
        pks = next_pks(sql, sum(len(w.items) for w in requests))
        make_row = report_row.row
        rows: list[tuple[Any, ...]] = []
        joins: list[tuple[str, int, Any]] = []
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], Joined] = {}
        out: list[list[tuple[Any, ...]]] = []
        for w in requests:
            now, at_now, key_name, rules_version = w.now, sql.at(w.now), w.key_name, w.rules_version
            results: list[tuple[Any, ...]] = []
            out.append(results)
            for report, targets in w.items:
                key = (report.source, report.id)
                revs = held.get(key)
                latest = None
                if revs is not None:
                    newest = max(revs)
                    answer = held_answer(report, revs, newest)
                    if answer is not None:
                        tag, which = answer
                        results.append((*held_result(tag, which), newest))
                        continue
                    latest = revs[newest]
                occurred = sql.at(report.occurred_at)
                incident, merged = self._incident(
                    report, latest[1] if latest else None, occurred, at_now
                )
                pk = next(pks)
                entry = (report, incident, pk, now, key_name, rules_version)
                if revs is None:
                    held[key] = {report.revision: entry}
                else:
                    revs[report.revision] = entry
                rows.append(
                    make_row(report, pk, occurred, at_now, key_name, rules_version, incident)
                )
                group_ids = []
                for target in targets:
                    g = groups.get((target.route_id, target.labels))
                    if g is None:
                        g = groups[target.route_id, target.labels] = open_group(
                            sql, self.open_groups, target, now
                        )
                    elif now > g.last_now:
                        g.last_now = now
                    group_ids.append(g.id)
                    joins.append((g.id, pk, at_now))
                results.append((CREATED, pk, incident, merged, tuple(group_ids)))
        sql.insert_many("incidents", INCIDENT_INSERT_COLUMNS, self._incident_rows)
        self._incident_rows = []
        sql.insert_many("reports", REPORT_INSERT_COLUMNS, rows)
        # In one order in every transaction: on PostgreSQL concurrent ones then wait for
        # each other's groups instead of deadlocking on them.
        names = {}
        for _, g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[1].target.group_key)):
            opened_as = g.id
            self._remember(g, *write_group(sql, g, requests[0].rules_version))
            if g.id != opened_as:
                names[opened_as] = g.id
        if names:
            joins = [(names.get(g, g), pk, at) for g, pk, at in joins]
            for results in out:
                results[:] = [renamed(r, names) for r in results]
        sql.insert_many("group_reports", JOIN_INSERT_COLUMNS, joins)
        return out

    def _incident(
        self, report: Report, latest: str | None, occurred: Any, at_now: Any
    ) -> tuple[str, bool]:
        """The incident a new revision belongs to, and whether it joined another report's."""
        if report.incident is not None:
            found = report.incident in self.made or bool(
                self.sql.rows(INCIDENT_EXISTS, {"id": report.incident})
            )
            if not found:
                return self._make(report, report.incident, occurred, at_now, named=True), False
            self._join(report.incident, report)
            return report.incident, True
        if latest is not None:
            return latest, False  # a revision stays with its incident
        if report.location is not None:
            memory = self.memory
            if memory is not None and memory.covers(report):
                # The writer's memory holds this transaction's incidents too (see `_make`).
                candidates = memory.candidates(report)
            else:
                candidates = self._stored_candidates(report)
                if self.joined and candidates:
                    candidates = [
                        c._replace(anchored=c.anchored or c.id in self.anchored)
                        for c in candidates
                        if report.source not in self.joined.get(c.id, ())
                    ]
                if memory is not None and self.made:
                    candidates += [c for c in memory.candidates(report) if c.id in self.made]
                if self.fresh:
                    candidates = candidates + self.fresh.candidates(report)
            chosen = pick(report, candidates, self.merge) if candidates else None
            if chosen is not None:
                self._join(chosen, report)
                if report.tier == "own":
                    self._absorb(report, chosen)
                return chosen, True
        self._count += 1
        incident_id = f"{self._id_prefix}{self._count:08x}"
        made = self._make(report, incident_id, occurred, at_now, named=False)
        if report.tier == "own" and report.location is not None:
            self._absorb(report, made)
        return made, False

    def _absorb(self, report: Report, into: str) -> None:
        """Merge into `into` the incidents an own-tier report gathers (`absorbs`): observers
        who reported first, from where they stood, made them apart. Their reports keep
        their incident; reads count them in `into` (COUNTED_INCIDENT)."""
        memory = self.memory
        sources: set[str] = set(self.joined.get(into, ()))
        if memory is not None and memory.covers(report):
            around = memory.around(report)
            sources.update(memory.sources_of(into) or ())
        else:
            around = stored_around(self.sql, self.merge, report, into, sources)
            if memory is not None and self.made:
                around += [c for c in memory.around(report) if c.id in self.made]
                sources.update(memory.sources_of(into) or ())
        if self.fresh:
            around += self.fresh.around(report)
            sources.update(self.fresh.sources_of(into) or ())
        if self.joined:
            # Committed incidents as this transaction left them: joined by more sources,
            # perhaps by one of our teams.
            around = [
                c._replace(
                    sources=tuple(sorted({*c.sources, *self.joined[c.id]})),
                    anchored=c.anchored or c.id in self.anchored,
                )
                if c.id in self.joined
                else c
                for c in around
            ]
        for absorbed in absorbs(report, into, sources, around, self.merge):
            log.info("incident %s merged into %s, which our team %s reported between them",
                     absorbed, into, report.source)  # fmt: skip
            if absorbed in self.made:
                self._incident_rows = [
                    (*row[:-1], into) if row[0] == absorbed else row for row in self._incident_rows
                ]
            else:
                self.sql.run(MERGE_INCIDENT, {"into": into, "id": absorbed})
                self.sql.run(RECOUNT_GROUPS, {"id": absorbed})
            self.fresh.remove(absorbed)
            if memory is not None:
                memory.remove(absorbed)

    def _make(
        self, report: Report, incident_id: str, occurred: Any, at_now: Any, *, named: bool
    ) -> str:
        loc = report.location
        self._incident_rows.append((
            incident_id, report.kind, report.region, loc.lat if loc else None,
            loc.lon if loc else None, occurred, at_now, named, None,
        ))  # fmt: skip
        self.made.add(incident_id)
        if loc is not None:
            # Straight into the writer's memory where it holds that time: a failed commit
            # makes the writer read it again from the table (`IncidentMemory.forget`).
            memory = self.memory
            index = self.fresh if memory is None or report.occurred_at < memory.since else memory
            index.add(
                incident_id, report.kind, loc, report.occurred_at, (report.source,),
                report.tier == "own",
            )  # fmt: skip
        return incident_id

    def _join(self, incident_id: str, report: Report) -> None:
        source, anchors = report.source, report.tier == "own"
        if incident_id in self.fresh:
            self.fresh.join(incident_id, source, anchors=anchors)
        elif incident_id not in self.made:
            self.joined.setdefault(incident_id, set()).add(source)
            if anchors:
                self.anchored.add(incident_id)
        if self.memory is not None:
            self.memory.join(incident_id, source, anchors=anchors)

    def _stored_candidates(self, report: Report) -> list[Candidate]:
        """Committed incidents the report may join, from the table (a report older than
        the writer's memory, or PostgreSQL, where `save_wire` looked them up at once)."""
        looked_up = self._looked_up.get((report.source, report.id, report.revision))
        if looked_up is not None:
            return list(looked_up)
        return stored_candidates(self.sql, self.merge, report)

    def _remember(self, g: Joined, next_flush_at: Any, last_flush_at: Any) -> None:
        if self.open_groups is not None:
            key = (g.target.route_id, g.target.labels)
            self.open_groups[key] = (g.id, True, next_flush_at, last_flush_at, g.target.receiver)
