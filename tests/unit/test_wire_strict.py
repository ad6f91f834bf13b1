"""Odd input is refused, naming the field: the strict wire and the one JSON reader."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from dispatcher.intake import (
    FieldError,
    ReportIn,
    parse_batch_json,
    parse_report,
    parse_report_json,
    parse_time,
)
from dispatcher.rules.durations import parse_duration
from dispatcher.strictjson import NotJson, loads, ndjson_lines, numbered_lines

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def good(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "obs-1",
        "source": "observatory",
        "kind": "airstrike",
        "occurred_at": "2026-11-24T14:50:00+03:00",
        "location": {"lat": 36.1, "lon": 36.6},
        "casualties": {"killed": 2, "injured": 5},
        "notes": "two buildings",
    }
    base.update(changes)
    return base


def errors(result: ReportIn | list[FieldError] | None) -> dict[str, str]:
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return {e.field: e.message for e in result}


WRONG_TYPES = [
    ({"occurred_at": 1764000000}, "occurred_at"),
    ({"occurred_at": "1764000000"}, "occurred_at"),
    ({"occurred_at": "2026-11-24"}, "occurred_at"),
    ({"occurred_at": "2026-11-24T14:50:00"}, "occurred_at"),
    ({"location": {"lat": "36.1", "lon": 36.6}}, "location.lat"),
    ({"location": {"lat": True, "lon": 36.6}}, "location.lat"),
    ({"location": [36.1, 36.6]}, "location"),
    ({"casualties": {"killed": "3"}}, "casualties.killed"),
    ({"casualties": {"killed": 3.0}}, "casualties.killed"),
    ({"casualties": {"killed": True}}, "casualties.killed"),
    ({"revision": "2"}, "revision"),
    ({"id": 17}, "id"),
    ({"notes": 17}, "notes"),
    ({"notes": ["a"]}, "notes"),
    ({"region": 700}, "region"),
    ({"status": True}, "status"),
]


@pytest.mark.parametrize(("change", "field"), WRONG_TYPES)
def test_a_field_of_the_wrong_type_is_refused_whichever_it_is(
    change: dict[str, Any], field: str
) -> None:
    assert field in errors(parse_report(good(**change), now=NOW))
    text = json.dumps(good(**change)).encode()
    assert field in errors(parse_report_json(text, now=NOW)), "the fast path agrees"


OUT_OF_RANGE = [
    ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at", "before year 1 or after 9999"),
    ({"occurred_at": "9999-12-31T23:59:59-14:00"}, "occurred_at", "before year 1 or after 9999"),
    ({"occurred_at": "2026-02-30T10:00:00Z"}, "occurred_at", "not a real time"),
    ({"occurred_at": "10000-01-01T00:00:00Z"}, "occurred_at", "RFC 3339"),
    ({"occurred_at": "2026-11-24T23:59:60Z"}, "occurred_at", "not a real time"),
    ({"location": {"lat": 90.5, "lon": 0}}, "location.lat", "less than or equal to 90"),
    ({"revision": 2**70}, "revision", "less than or equal to 1000000"),
    ({"casualties": {"killed": 2**70}}, "casualties.killed", "less than or equal"),
    ({"notes": "a\x00b"}, "notes", "NUL"),
    ({"notes": "broken \ud800 pair"}, "notes", "lone surrogates"),
    ({"region": "SY\x00"}, "region", "NUL"),
    ({"id": "a\x00"}, "id", "pattern"),
]


@pytest.mark.parametrize(("change", "field", "says"), OUT_OF_RANGE)
def test_values_out_of_range_are_refused_naming_the_field(
    change: dict[str, Any], field: str, says: str
) -> None:
    found = errors(parse_report(good(**change), now=NOW))
    assert says in found[field]


def test_the_fast_path_refuses_nan_infinity_and_1e309_naming_the_field() -> None:
    for number in ("NaN", "Infinity", "-Infinity", "1e309"):
        text = json.dumps(good()).replace("36.1", number).encode()
        assert errors(parse_report_json(text, now=NOW)) == {
            "location.lat": "Input should be a finite number"
        }


def test_the_fast_path_gives_way_on_repeated_keys_and_lone_surrogates() -> None:
    repeated = b'{"id": "a", "id": "b", ' + json.dumps(good())[1:].encode()
    assert parse_report_json(repeated, now=NOW) is None, "the general path says which key"
    nested = json.dumps(good()).replace('"killed": 2', '"killed": 2, "killed": 9').encode()
    assert parse_report_json(nested, now=NOW) is None
    escaped = json.dumps(good()).replace('"killed": 2', '"killed": 2, "kill\\u0065d": 9')
    assert parse_report_json(escaped.encode(), now=NOW) is None
    batch = json.dumps([good(), good(id="obs-2")]).replace('"obs-2"', '"obs-2", "id": "x"')
    assert parse_batch_json(batch.encode(), now=NOW) is None
    surrogate = json.dumps(good()).replace("two buildings", "\\ud800").encode()
    assert parse_report_json(surrogate, now=NOW) is None


def test_the_fast_path_keeps_ordinary_reports() -> None:
    one = parse_report_json(json.dumps(good(), ensure_ascii=False).encode(), now=NOW)
    assert isinstance(one, ReportIn)
    named = good(notes="killed", region="location")  # values that equal a key's name
    assert isinstance(parse_report_json(json.dumps(named).encode(), now=NOW), ReportIn)
    quoted = good(notes='he said "stop": then it hit')  # an escaped quote before a colon
    assert parse_report_json(json.dumps(quoted).encode(), now=NOW) is None, "not sure: give way"
    spaced = json.dumps(good()).replace('"id":', '"id" :').encode()
    assert parse_report_json(spaced, now=NOW) is None, "not sure: give way"
    hidden = json.dumps(good()).replace('"id":', '"id" : "x", "id":').encode()
    assert parse_report_json(hidden, now=NOW) is None, "a repeated key behind a space too"
    batch = parse_batch_json(json.dumps([good(), good(id="obs-2")]).encode(), now=NOW)
    assert batch is not None
    assert [r.id for r in batch if isinstance(r, ReportIn)] == ["obs-1", "obs-2"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ('{"a": 1e309}', "the number 1e309 is out of range"),
        ('{"a": 1, "b": {"c": 1, "c": 2}}', "the key 'c' appears twice in one object"),
        ("[" * 10_000 + "]" * 10_000, "nested too deeply"),
        ('{"a": ' + "9" * 5000 + "}", "Exceeds the limit"),
        ('{"a": 1', "Expecting ',' delimiter"),
    ],
)
def test_the_json_reader_refuses_what_is_not_plain_json(text: str, says: str) -> None:
    with pytest.raises(NotJson, match=says):
        loads(text.encode())


def test_the_json_reader_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(NotJson, match="not UTF-8"):
        loads(b'{"a": "\xff"}')


def test_ndjson_splits_on_line_feeds_only() -> None:
    inside = '{"notes": "a\u2028b\u2029c\u0085d"}'
    raw = (inside + "\r\n\n  \n" + inside + "\n").encode()
    lines = ndjson_lines(raw)
    assert len(lines) == 2, "U+2028, U+2029 and U+0085 are text, not line ends"
    assert loads(lines[0]) == {"notes": "a\u2028b\u2029c\u0085d"}
    assert str.splitlines(inside) != [inside], "what splitlines() would have broken"


def test_ndjson_lines_keep_their_numbers_for_messages() -> None:
    inside = '{"notes": "a\u2028b\u2029c\u0085d"}'
    raw = ("\n" + inside + "\r\n\n{broken\n" + inside).encode()
    assert numbered_lines(raw) == [(2, inside.encode()), (4, b"{broken"), (5, inside.encode())]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("9999999999999h", "too long; the longest is 36600 days"),
        ("1" + "0" * 5000 + "s", "too long"),
        ("36601d", "too long"),
    ],
)
def test_huge_durations_are_refused_with_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_duration(text)


def test_a_century_is_the_longest_duration() -> None:
    assert parse_duration("36600d").days == 36600


def test_times_keep_their_offset_and_accept_rfc3339_spellings() -> None:
    assert parse_time("2026-11-24t14:50:00.123456789z") == datetime(
        2026, 11, 24, 14, 50, 0, 123456, tzinfo=UTC
    )
    assert parse_time("2026-11-24T14:50:00+03:00").utcoffset() is not None
