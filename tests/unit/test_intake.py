"""A report is accepted only whole and valid; every bad field is named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatcher.intake import (
    FieldError,
    ReportIn,
    parse_batch_json,
    parse_report,
    parse_report_json,
    to_report,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def good(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "obs-1",
        "source": "observatory",
        "kind": "airstrike",
        "occurred_at": "2026-11-24T14:50:00+03:00",
        "location": {"lat": 36.1, "lon": 36.6},
        "casualties": {"killed": 2, "injured": 5},
    }
    base.update(changes)
    return base


def fields(result: ReportIn | list[FieldError]) -> list[str]:
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return [e.field for e in result]


def test_a_good_report_parses_with_defaults() -> None:
    result = parse_report(good(), now=NOW)
    assert isinstance(result, ReportIn)
    assert result.status == "unconfirmed"
    assert result.revision == 1
    assert result.casualties.trapped == 0
    report = to_report(result, region="SY0703")
    assert report.occurred_at == datetime(2026, 11, 24, 11, 50, tzinfo=UTC)
    assert report.casualties.killed == 2
    assert (report.tier, report.site) == ("other", None)


def test_a_report_names_its_site_and_takes_its_source_s_tier() -> None:
    result = parse_report(good(site="building-north"), now=NOW)
    assert isinstance(result, ReportIn)
    report = to_report(result, region="SY0703", tier="own")
    assert (report.tier, report.site) == ("own", "building-north")


@pytest.mark.parametrize(
    ("changes", "bad_fields"),
    [
        ({"colour": "red"}, ["colour"]),
        ({"site": "building north"}, ["site"]),
        ({"site": ""}, ["site"]),
        ({"site": "b" * 101}, ["site"]),
        ({"kind": "meteor"}, ["kind"]),
        ({"casualties": {"killed": -1}}, ["casualties.killed"]),
        ({"casualties": {"killed": "3"}}, ["casualties.killed"]),
        ({"casualties": {"dead": 3}}, ["casualties.dead"]),
        ({"location": {"lat": 91, "lon": 0}}, ["location.lat"]),
        ({"location": {"lat": 0, "lon": -181}}, ["location.lon"]),
        ({"occurred_at": "2026-11-24T14:50:00"}, ["occurred_at"]),
        ({"status": "maybe"}, ["status"]),
        ({"revision": 0}, ["revision"]),
        ({"notes": "x" * 2001}, ["notes"]),
        ({"id": "has space"}, ["id"]),
        ({"kind": "meteor", "revision": 0, "extra": 1}, ["kind", "revision", "extra"]),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], bad_fields: list[str]) -> None:
    assert sorted(fields(parse_report(good(**changes), now=NOW))) == sorted(bad_fields)
    from_text = parse_report_json(json.dumps(good(**changes)).encode(), now=NOW)
    assert from_text is not None
    assert sorted(fields(from_text)) == sorted(bad_fields), "the same, parsed from the text"


@pytest.mark.parametrize("text", [b'{"id": "cut', b"[1]", b'"a string"', b"42", b"null"])
def test_text_that_is_not_a_report_object_is_left_to_the_general_path(text: bytes) -> None:
    assert parse_report_json(text, now=NOW) is None


def test_a_report_parsed_from_its_text_is_the_one_parsed_from_json() -> None:
    text = json.dumps(good(region="Idlib")).encode()
    resolve = {"Idlib": "SY07"}.get
    assert parse_report_json(text, now=NOW, resolve_region=resolve) == parse_report(  # type: ignore[arg-type]
        good(region="Idlib"),
        now=NOW,
        resolve_region=resolve,  # type: ignore[arg-type]
    )


def test_missing_required_fields_are_named() -> None:
    data = good()
    del data["kind"], data["source"]
    assert sorted(fields(parse_report(data, now=NOW))) == ["kind", "source"]


def test_a_report_needs_a_place() -> None:
    data = good()
    del data["location"]
    errors = parse_report(data, now=NOW)
    assert isinstance(errors, list)
    assert "location" in errors[0].message


def test_a_report_from_the_future_is_refused() -> None:
    later = (NOW + timedelta(minutes=11)).isoformat()
    assert fields(parse_report(good(occurred_at=later), now=NOW)) == ["occurred_at"]
    soon = (NOW + timedelta(minutes=9)).isoformat()
    assert isinstance(parse_report(good(occurred_at=soon), now=NOW), ReportIn)


def test_an_unknown_region_is_refused() -> None:
    def resolve(text: str) -> str | list[str]:
        known: dict[str, str | list[str]] = {
            "SY07": "SY07", "Idlib": "SY07", "Harem": ["SY0703", "SY0799"],
        }  # fmt: skip
        return known.get(text, [])

    result = parse_report(good(region="SY99"), now=NOW, resolve_region=resolve)
    assert fields(result) == ["region"]
    named = parse_report(good(region="Idlib"), now=NOW, resolve_region=resolve)
    assert isinstance(named, ReportIn)
    assert named.region == "SY07", "a name becomes its id"
    ambiguous = parse_report(good(region="Harem"), now=NOW, resolve_region=resolve)
    assert isinstance(ambiguous, list)
    assert "SY0703, SY0799" in ambiguous[0].message


def test_a_non_object_is_refused() -> None:
    assert fields(parse_report([1, 2], now=NOW)) == ["(report)"]


def test_a_valid_json_array_is_validated_in_one_pass_as_item_by_item() -> None:
    items = [
        good(),
        good(id="r2", region="SY07"),
        good(id="r3", occurred_at=(NOW + timedelta(hours=1)).isoformat()),
    ]

    def resolve(text: str) -> str | list[str]:
        return "SY07" if text in ("SY07", "Idlib") else []

    fast = parse_batch_json(json.dumps(items).encode(), now=NOW, resolve_region=resolve)
    slow = [parse_report(i, now=NOW, resolve_region=resolve) for i in items]
    assert fast == slow
    assert fields(slow[2]) == ["occurred_at"], "the clock check runs on the fast path too"
    broken = [*items, good(kind="flood")]
    assert parse_batch_json(json.dumps(broken).encode(), now=NOW) is None, (
        "an invalid item sends the batch to the per-item path, for its own errors"
    )
    assert parse_batch_json(json.dumps(good()).encode(), now=NOW) is None, "not an array"
