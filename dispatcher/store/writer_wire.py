"""A report write and its answer, and their wire form to the SQLite writer process and back.

`ReportWrite` is what a request hands the write path (its reports and their group targets),
`SaveResult` what it gets back for each report. To the writer process and back they travel
as plain tuples: pickling dataclasses, named tuples and aware datetimes cost more than
deciding the reports. A report travels as its row (store/report_row.py) with its times as
microseconds since 1970; each distinct group target once per write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from dispatcher.group import GroupTarget, Timing
from dispatcher.model import Report
from dispatcher.resend import Difference, resend_differences
from dispatcher.store import report_row
from dispatcher.store.report_row import (
    INCIDENT_ID,
    KEY_NAME,
    OCCURRED_AT,
    PK,
    RECEIVED_AT,
    RULES_VERSION,
    StoredReport,
)


@dataclass(frozen=True, slots=True)
class SaveResult:
    outcome: Literal["created", "duplicate", "stale", "conflict"]
    # The new row, the one already held (duplicate, conflict), or (stale) the newest one.
    stored: StoredReport
    group_ids: tuple[str, ...] = ()
    merged: bool = False  # joined an incident another report had opened
    # conflict: the fields the resend gives otherwise, and the newest revision held
    differences: tuple[Difference, ...] = ()
    newest: int = 0


@dataclass(frozen=True, slots=True)
class ReportWrite:
    """The reports of one API request, saved in order within a transaction."""

    items: Sequence[tuple[Report, Sequence[GroupTarget]]]
    now: datetime
    key_name: str
    rules_version: str


# A result's tag on the wire.
CREATED, DUPLICATE, STALE, CONFLICT = 0, 1, 2, 3

# A revision the writer holds: (report, its incident, pk, received_at, key, rules version).
Held = tuple[Report, str | None, int, datetime, str, str]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Fields of a report's wire form (its row); its group targets follow.
_WIDTH = len(report_row.COLUMNS)


def micros(at: datetime) -> int:
    """A time as whole microseconds since 1970: pickling a datetime with its zone cost
    more than everything else a report's wire form holds."""
    return (at - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _seconds(span: timedelta | None) -> float | None:
    return span.total_seconds() if span is not None else None


def _span(seconds: float | None) -> timedelta | None:
    return timedelta(seconds=seconds) if seconds is not None else None


def encode_write(w: ReportWrite) -> tuple[Any, ...]:
    """A report write as plain values; each distinct group target is sent once."""
    numbers: dict[int, int] = {}
    targets: list[GroupTarget] = []
    items = []
    row = report_row.row
    for report, wanted in w.items:
        refs = []
        for target in wanted:
            n = numbers.get(id(target))
            if n is None:
                n = numbers[id(target)] = len(targets)
                targets.append(target)
            refs.append(n)
        flat = row(report, None, micros(report.occurred_at), None, None, None, report.incident)
        items.append((*flat, tuple(refs)))
    table = [(t.route_id, t.labels, t.receiver, *map(_seconds, t.timing)) for t in targets]
    return items, table, micros(w.now), w.key_name, w.rules_version


def decode_write(
    data: tuple[Any, ...], known: dict[tuple[Any, ...], GroupTarget] | None = None
) -> ReportWrite:
    """A report write from its wire form; `known` remembers decoded targets across calls."""
    items, table, now, key_name, rules_version = data
    known = {} if known is None else known
    targets = []
    for wire in table:
        target = known.get(wire)
        if target is None:
            route_id, labels, receiver, wait, interval, repeat, close, escalate = wire
            timing = Timing(
                timedelta(seconds=wait), timedelta(seconds=interval),
                timedelta(seconds=repeat), timedelta(seconds=close), _span(escalate),
            )  # fmt: skip
            if len(known) > 10_000:
                known.clear()
            target = known[wire] = GroupTarget(route_id, labels, receiver, timing)
        targets.append(target)
    report = report_row.report
    return ReportWrite(
        [
            (report(f, from_micros(f[OCCURRED_AT]), None), [targets[n] for n in f[_WIDTH]])
            for f in items
        ],
        from_micros(now),
        key_name,
        rules_version,
    )


def held_result(tag: int, held: Held) -> tuple[Any, ...]:
    """The answer for a report the writer holds a revision of: `tag` and that revision's row."""
    report, incident, pk, received_at, key_name, rules_version = held
    row = report_row.row(
        report, pk, micros(report.occurred_at), micros(received_at), key_name, rules_version,
        incident,
    )  # fmt: skip
    return tag, row


def renamed(result: tuple[Any, ...], names: Mapping[str, str]) -> tuple[Any, ...]:
    """A result with its groups renamed (a group handed over while the write was decided)."""
    if result[0] != CREATED:
        return result
    tag, pk, incident, merged, group_ids = result
    return tag, pk, incident, merged, tuple(names.get(g, g) for g in group_ids)


def decode_results(w: ReportWrite, data: Sequence[tuple[Any, ...]]) -> list[SaveResult]:
    """The results of `w` from their wire form (`ReportWriter.save_wire`): a new report is
    the one sent, with the incident it joined."""
    out = []
    for (report, _), r in zip(w.items, data, strict=True):
        if r[0] == CREATED:
            _, pk, incident, merged, group_ids = r
            stored = StoredReport(
                report._replace(incident=incident), pk, w.now, w.key_name, w.rules_version
            )
            out.append(SaveResult("created", stored, group_ids, merged))
            continue
        tag, row = r[0], r[1]
        received = from_micros(row[RECEIVED_AT])
        held = report_row.report(row, from_micros(row[OCCURRED_AT]), received)
        stored = StoredReport(held, row[PK], received, row[KEY_NAME], row[RULES_VERSION])
        if tag == CONFLICT:
            differences = tuple(resend_differences(report, held, row[INCIDENT_ID]))
            out.append(SaveResult("conflict", stored, differences=differences, newest=r[2]))
        else:
            out.append(SaveResult("duplicate" if tag == DUPLICATE else "stale", stored))
    return out
