"""What a leader reads on the lock screen, in Arabic and English."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from dispatcher.group import summarize
from dispatcher.model import Casualties, Report
from dispatcher.notify.render import BODY_MAX, PDF, RLE, TITLE_MAX, render
from dispatcher.rules.load import load_rules

DAMASCUS = ZoneInfo("Asia/Damascus")
T0 = datetime(2026, 11, 24, 11, 2, tzinfo=UTC)


def reports(n: int, *, killed: int = 1, injured: int = 2, trapped: int = 1) -> list[Report]:
    return [
        Report(
            source="obs",
            id=f"r{i}",
            kind="barrel_bomb" if i % 2 else "airstrike",
            occurred_at=T0,
            region="SY0703",
            casualties=Casualties(killed, injured, trapped),
            incident=f"inc-{i}",
        )
        for i in range(n)
    ]


def test_english_update_says_what_is_new_and_the_totals() -> None:
    s = summarize(reports(3), previous={}, previous_at=None)
    r = render(s, place="Harim", locale="en", tz=DAMASCUS)
    assert r.title == "Harim · new incidents: 3"
    assert r.body.splitlines() == [
        "killed: 3 · injured: 6 · trapped: 3",
        "airstrike: 2 · barrel bomb: 1",
        "incidents in this alert: 3",
    ]


def test_later_update_names_the_time_of_the_previous_one_in_local_time() -> None:
    rs = reports(2)
    s = summarize(rs, previous={"inc-0": [1, 2, 1, 0, 0]}, previous_at=T0)
    r = render(s, place="Harim", locale="en", tz=DAMASCUS)
    assert r.title == "Harim · new incidents: 1"
    assert r.body.endswith("incidents in this alert: 2 · since 14:02")


def test_arabic_update_is_wrapped_right_to_left_line_by_line() -> None:
    s = summarize(reports(2), previous={}, previous_at=None)
    r = render(s, place="حارم", locale="ar", tz=DAMASCUS)
    assert r.title == f"{RLE}حارم · حوادث جديدة: 2{PDF}"
    lines = r.body.splitlines()
    assert all(line.startswith(RLE) and line.endswith(PDF) for line in lines)
    assert "قتلى: 2" in lines[0]
    assert "غارة جوية: 1" in lines[1]


def test_long_texts_are_cut_to_what_a_phone_shows() -> None:
    s = summarize(reports(1), previous={}, previous_at=None)
    r = render(s, place="X" * 200, locale="en", tz=DAMASCUS)
    assert len(r.title) == TITLE_MAX
    assert r.title.endswith("…")
    assert len(r.body) <= BODY_MAX


def test_a_revision_says_which_counts_changed() -> None:
    rs = reports(1)
    corrected = [
        rs[0],
        Report(
            source="obs",
            id="r0",
            kind="airstrike",
            occurred_at=T0,
            region="SY0703",
            casualties=Casualties(killed=3, injured=2, trapped=1),
            revision=2,
            incident="inc-0",
        ),
    ]
    s = summarize(corrected, previous={"inc-0": [1, 2, 1, 0, 0]}, previous_at=T0)
    en = render(s, place="Harim", locale="en", tz=DAMASCUS)
    assert en.title == "Harim · revised: 1"
    assert en.body.splitlines()[:2] == [
        "killed: 3 · injured: 2 · trapped: 1",
        "revised: killed 1→3",
    ]
    ar = render(s, place="حارم", locale="ar", tz=DAMASCUS)
    assert ar.body.splitlines()[1] == f"{RLE}معدّلة: قتلى: من 1 إلى 3{PDF}"


def test_operators_templates_replace_the_title_totals_and_footer(tmp_path: Path) -> None:
    e2e = Path(__file__).parents[1] / "testdata" / "rules-e2e"
    for name in ("regions.yaml", "teams.yaml", "routes.yaml"):
        (tmp_path / name).write_text((e2e / name).read_text())
    (tmp_path / "templates.yaml").write_text(
        "en:\n"
        '  title: "{place} · {new} new strikes since {since}"\n'
        '  totals: "{killed} killed, {injured} injured, {trapped} trapped"\n'
        '  footer: "{today} strikes today"\n'
    )
    templates = load_rules(tmp_path).templates
    rs = reports(4)
    s = summarize(rs, previous={"inc-0": [1, 2, 1, 0, 0]}, previous_at=T0)
    r = render(s, place="Idleb", locale="en", tz=DAMASCUS, today=7,
               templates=templates["en"])  # fmt: skip
    assert r.title == "Idleb · 3 new strikes since 14:02"
    assert r.body.splitlines() == [
        "4 killed, 8 injured, 4 trapped",
        "airstrike: 2 · barrel bomb: 2",
        "7 strikes today",
    ]
    arabic = render(s, place="إدلب", locale="ar", tz=DAMASCUS, templates=templates.get("ar"))
    assert "قتلى: 4" in arabic.body, "a language without templates keeps the shipped texts"
