"""A report write's pure parts: the answer to a resend, a report's row, and its wire form.

What a reporter sees when they send a report again (duplicate, stale, conflict) is decided
from the revisions held, before any row is written; a report goes into its row and the
writer process's wire form and comes back the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.group import GroupTarget, Timing
from dispatcher.model import Casualties, Point, Report
from dispatcher.store import report_row
from dispatcher.store.report_writer import held_answer
from dispatcher.store.tables import reports
from dispatcher.store.writer_wire import (
    CONFLICT,
    DUPLICATE,
    STALE,
    Held,
    ReportWrite,
    decode_results,
    decode_write,
    encode_write,
    held_result,
)

T0 = datetime(2026, 12, 6, 8, 30, 15, 123456, tzinfo=UTC)
# Every field set, and no two alike: a field read back from the wrong column shows.
FULL = Report(
    source="obs-7", id="r-42", kind="shelling", occurred_at=T0, region="SY0703",
    casualties=Casualties(killed=3, injured=5, trapped=7, rescued=11), status="confirmed",
    revision=2, location=Point(36.125, 36.625), given_region="SY07", notes="near the market",
    incident="inc-1", tier="own", site="building 4",
)  # fmt: skip
BARE = Report(source="obs-7", id="r-43", kind="airstrike", occurred_at=T0, region="unassigned")


def held(revision: int) -> Held:
    report = FULL._replace(revision=revision)
    return report, "inc-1", 10 + revision, T0 + timedelta(minutes=revision), "key-a", "v1"


REVS = {1: held(1), 3: held(3)}


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        (FULL._replace(revision=4), None),  # newer than any held: written
        (FULL._replace(revision=3), (DUPLICATE, REVS[3])),  # a retry of the newest
        (FULL._replace(revision=1), (DUPLICATE, REVS[1])),  # a retry of an old one, late
        (FULL._replace(revision=1, incident=None), (DUPLICATE, REVS[1])),  # names none
        (FULL._replace(revision=3, casualties=Casualties(killed=4)), (CONFLICT, REVS[3])),
        (FULL._replace(revision=1, notes="moved"), (CONFLICT, REVS[1])),
        (FULL._replace(revision=2), (STALE, REVS[3])),  # never seen, older than held
    ],
)
def test_a_resend_is_answered_from_the_revisions_held(
    sent: Report, answer: tuple[int, Held] | None
) -> None:
    assert held_answer(sent, REVS, max(REVS)) == answer


@pytest.mark.parametrize("report", [FULL, BARE])
def test_a_report_comes_back_from_its_row_as_it_went_in(report: Report) -> None:
    received = T0 + timedelta(seconds=2)
    row = report_row.row(report, 7, T0, received, "key-a", "v1", report.incident)
    assert len(row) == len(reports.columns)
    by_name = dict(zip(report_row.COLUMNS, row, strict=True))
    assert (by_name["ext_id"], by_name["killed"], by_name["rescued"]) == (
        report.id,
        report.casualties.killed,
        report.casualties.rescued,
    )
    stored = report_row.stored(row)
    assert stored == report_row.StoredReport(
        report._replace(received_at=received), 7, received, "key-a", "v1"
    )


def test_the_row_follows_the_tables_columns() -> None:
    assert tuple(c.name for c in reports.columns) == report_row.COLUMNS
    assert report_row.SELECT_COLUMNS.split(", ") == list(report_row.COLUMNS)


def test_a_report_write_crosses_to_the_writer_process_and_back_unchanged() -> None:
    timing = Timing(timedelta(seconds=30), timedelta(minutes=5), timedelta(hours=4))
    escalating = timing._replace(escalate_after=timedelta(minutes=20))
    a = GroupTarget("idleb", (("region", "SY07"),), "idleb-team", timing)
    b = GroupTarget("all", (), "ops", escalating)
    write = ReportWrite([(FULL, [a, b]), (BARE, [a])], T0, "key-a", "v1")
    wire = encode_write(write)
    assert len(wire[1]) == 2  # each target once
    back = decode_write(wire)
    assert back == write


def test_a_held_revision_is_answered_with_its_stored_row() -> None:
    sent = FULL._replace(revision=3, casualties=Casualties(killed=4))
    write = ReportWrite([(sent, [])], T0 + timedelta(hours=1), "key-b", "v2")
    (result,) = decode_results(write, [(*held_result(CONFLICT, REVS[3]), 3)])
    received = T0 + timedelta(minutes=3)
    assert result.outcome == "conflict"
    assert result.stored == report_row.StoredReport(
        FULL._replace(revision=3, received_at=received), 13, received, "key-a", "v1"
    )
    assert [d.field for d in result.differences] == [
        "casualties.killed",
        "casualties.injured",
        "casualties.trapped",
        "casualties.rescued",
    ]
    assert result.newest == 3
