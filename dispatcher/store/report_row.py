"""A report's row shape, written once: the `reports` table's columns and the `Report` fields.

Everything that writes a report's row or reads one back goes through here: the write path's
INSERT (`row`), its plain-SQL reads (`SELECT_COLUMNS`, `stored`), the Core reads of whole
rows (`select(reports)` gives the table's columns first, in the same order: `stored`) and the
SQLite writer process's wire form, which is this row with times as microseconds
(store/writer_wire.py). Adding a field to a report touches `model.Report`, the table and its
migration (store/tables.py), and `row` and `report` below.

The API's form of a report (`intake.ReportIn`, `intake.report_json`) is another shape on
purpose: it is the public contract, nested as reporters send it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatcher.model import Casualties, Point, Report
from dispatcher.store.dbapi import aware
from dispatcher.store.tables import reports

# The table's columns, in its order: `row` builds and `report` reads them in this order.
COLUMNS: tuple[str, ...] = tuple(reports.columns.keys())
PK, OCCURRED_AT, RECEIVED_AT, KEY_NAME, RULES_VERSION, INCIDENT_ID = (
    COLUMNS.index(name)
    for name in ("pk", "occurred_at", "received_at", "key_name", "rules_version", "incident_id")
)
SELECT_COLUMNS = ", ".join(COLUMNS)
# A report as counted: in the incident its own was merged into, if it was.
COUNTED_INCIDENT = (
    "coalesce((SELECT m.merged_into FROM incidents m WHERE m.id = reports.incident_id), "
    "reports.incident_id)"
)
COUNTED_SELECT_COLUMNS = ", ".join(
    COUNTED_INCIDENT if name == "incident_id" else name for name in COLUMNS
)


@dataclass(frozen=True, slots=True)
class StoredReport:
    report: Report
    pk: int
    received_at: datetime
    key_name: str
    rules_version: str


def row(
    report: Report,
    pk: int | None,
    occurred_at: Any,
    received_at: Any,
    key_name: str | None,
    rules_version: str | None,
    incident: str | None,
) -> tuple[Any, ...]:
    """The report's row, in COLUMNS' order; times as the caller binds them (None for what
    the store has not given yet, in the wire form of a report on its way to be written)."""
    loc, c = report.location, report.casualties
    return (
        pk, report.source, report.id, report.revision, report.kind, report.status, occurred_at,
        received_at, loc.lat if loc else None, loc.lon if loc else None, report.given_region,
        report.region, c.killed, c.injured, c.trapped, c.rescued, report.notes, key_name,
        rules_version, incident, report.tier, report.site,
    )  # fmt: skip


def report(values: Sequence[Any], occurred_at: datetime, received_at: datetime | None) -> Report:
    """The report of a row in COLUMNS' order (more values may follow), its times given."""
    (_, source, ext_id, revision, kind, status, _, _, lat, lon, given_region, region, killed,
     injured, trapped, rescued, notes, _, _, incident_id, tier, site) = values[:_WIDTH]  # fmt: skip
    return Report(
        source, ext_id, kind, occurred_at, region, Casualties(killed, injured, trapped, rescued),
        status, revision, Point(lat, lon) if lat is not None and lon is not None else None,
        given_region, notes, incident_id, tier, site, received_at,
    )  # fmt: skip


def stored(values: Sequence[Any]) -> StoredReport:
    """A row read from the database (a plain-SQL tuple or a Core row) as a StoredReport."""
    occurred, received = aware(values[OCCURRED_AT]), aware(values[RECEIVED_AT])
    assert occurred is not None
    assert received is not None
    return StoredReport(
        report(values, occurred, received),
        int(values[PK]),
        received,
        values[KEY_NAME],
        values[RULES_VERSION],
    )


_WIDTH = len(COLUMNS)
assert _WIDTH == 22, "a column was added to reports: add it to `row` and `report`"
