"""Odd input never breaks the service: each case a fuzzer found is a clear 4xx, naming the
field or the parameter, and nothing is stored."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Keys, Running, running, settings_for

LIMIT = 64 * 1024


def report(rid: str = "odd-1", **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "source": "fuzzer",
        "kind": "shelling",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "location": {"lat": 36.12, "lon": 36.52},
        "casualties": {"injured": 1},
    }
    body.update(more)
    return body


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Running]:
    keys = Keys()
    keys.add("admin", "admin")
    keys.add("phone", "devices:write", leader="idleb-lead-1")
    settings = settings_for(tmp_path, keys, server={"max_body_bytes": LIMIT})
    async with running(settings, keys) as svc:
        yield svc


async def send(
    service: Running, method: str, path: str, data: bytes | str, *, key: str = "admin"
) -> tuple[int, dict[str, Any]]:
    headers = {
        "Authorization": f"Bearer {service.keys.plain[key]}",
        "Content-Type": "application/json",
    }
    body = data.encode() if isinstance(data, str) else data
    async with service.http.request(method, service.url + path, data=body, headers=headers) as r:
        assert r.content_type in ("application/problem+json", "application/json")
        answer: dict[str, Any] = await r.json(content_type=None)
        return r.status, answer


def fields(answer: dict[str, Any]) -> list[str]:
    return [e["field"] for e in answer.get("errors", [])]


def text_of(body: dict[str, Any]) -> str:
    return json.dumps(body)


REFUSED_REPORTS: list[tuple[str, str, int, str]] = [
    # (what, the body, status, the field named or words of the detail)
    ("10,000-deep array", "[" * 10_000 + "]" * 10_000, 400, "nested too deeply"),
    ("deep array in a field", text_of(report(notes=[])).replace("[]", "[" * 10_000 + "]" * 10_000),
     400, "nested too deeply"),
    ("year 0 in UTC", text_of(report(occurred_at="0001-01-01T00:00:00+14:00")), 422,
     "occurred_at"),
    ("year 10000 in UTC", text_of(report(occurred_at="9999-12-31T23:59:59-14:00")), 422,
     "occurred_at"),
    ("a day that is not", text_of(report(occurred_at="2026-02-30T10:00:00Z")), 422,
     "occurred_at"),
    ("time as a number", text_of(report(occurred_at=1764000000)), 422, "occurred_at"),
    ("latitude as a string", text_of(report(location={"lat": "36.1", "lon": 36.5})), 422,
     "location.lat"),
    ("latitude past 90", text_of(report(location={"lat": 90.0001, "lon": 36.5})), 422,
     "location.lat"),
    ("count as a string", text_of(report(casualties={"killed": "3"})), 422, "casualties.killed"),
    ("NaN", text_of(report()).replace("36.12", "NaN"), 422, "location.lat"),
    ("1e309", text_of(report()).replace("36.12", "1e309"), 422, "location.lat"),
    ("2**70", text_of(report(revision=2**70)), 422, "revision"),
    ("a lone surrogate", text_of(report(notes="\ud800")), 422, "notes"),
    ("NUL", text_of(report(notes="a\x00b")), 422, "notes"),
    ("a repeated key", text_of(report()).replace('"injured": 1', '"injured": 1, "injured": 40'),
     400, "the key 'injured' appears twice"),
    ("a lone surrogate in a key", '{"\\udfff": 1}', 422, "(report)"),
    ("past the size limit", text_of(report(notes="x" * LIMIT)), 413, "too large"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [case[1:] for case in REFUSED_REPORTS],
    ids=[case[0] for case in REFUSED_REPORTS],
)
async def test_odd_reports_are_refused_and_nothing_is_stored(
    service: Running, body: str, status: int, named: str
) -> None:
    got, answer = await send(service, "POST", "/v1/reports", body)
    assert got == status, answer
    assert named in fields(answer) or named in answer.get("detail", "") or named in str(answer)
    got, batch = await send(service, "POST", "/v1/reports", f"[{body}]")
    assert got in (status, 200, 400), batch  # a batch that is not strict JSON is a 400
    if got == 200:
        assert batch["invalid"] == 1, "in a batch, the same report fails alone"
    assert await service.service.store.count_reports() == 0


async def test_every_json_endpoint_reads_bodies_the_same_way(service: Running) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    for method, path, key in [
        ("POST", "/v1/devices", "phone"),
        ("DELETE", "/v1/devices", "phone"),
        ("POST", "/v1/silences", "admin"),
        ("POST", "/v1/groups/0123abcd/ack", "phone"),
    ]:
        got, answer = await send(service, method, path, deep, key=key)
        assert (got, answer["detail"]) == (
            400,
            "the body is not valid JSON: it is nested too deeply",
        ), path
        got, answer = await send(service, method, path, '{"a": 1, "a": 2}', key=key)
        assert (got, answer["detail"]) == (
            400,
            "the body is not valid JSON: the key 'a' appears twice in one object",
        ), path
        got, answer = await send(service, method, path, '{"a": NaN}', key=key)
        assert got == 400, path
    token = "t" * 40
    got, answer = await send(
        service, "POST", "/v1/devices", json.dumps({"token": token, "platform": 1}), key="phone"
    )
    assert (got, fields(answer)) == (422, ["platform"])
    got, answer = await send(
        service, "POST", "/v1/groups/0123abcd/ack", json.dumps({"responding": 1}), key="phone"
    )
    assert (got, fields(answer)) == (422, ["responding"]), "a flag is a boolean, not 1"


def silence(**more: Any) -> str:
    body = {"matchers": {"kinds": ["fire"]}, "author": "desk", "reason": "drill", **more}
    return json.dumps(body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (silence(duration="9999999999999h"), "duration"),
        (silence(duration="1h", starts_at="9999-12-31T23:30:00Z"), "duration"),
        (silence(ends_at="9999-12-31T23:59:59-14:00"), "ends_at"),
        (silence(starts_at=1764000000, duration="1h"), "starts_at"),
        (silence(duration="1h", author="a\x00"), "author"),
        (silence(duration="1h", reason="\udc00"), "reason"),
        (silence(duration="1h", matchers={"kinds": [3]}), "matchers.kinds[0]"),
    ],
)
async def test_odd_silences_are_refused_naming_the_field(
    service: Running, body: str, field: str
) -> None:
    got, answer = await send(service, "POST", "/v1/silences", body)
    assert (got, fields(answer)) == (422, [field]), answer
    got, listed = await send(service, "GET", "/v1/silences?all=1", b"")
    assert (got, listed["silences"]) == (200, [])


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=9999-12-31T23:59:59-14:00", "since"),
        ("since=0001-01-01T00:00:00%2B14:00", "since"),
        ("since=2026-02-30T00:00:00Z", "since"),
        ("since=1764000000", "since"),
        ("limit=" + "9" * 30, "limit"),
        ("cursor=" + cursor("9999-12-31T23:59:59-14:00|abc"), "cursor"),
        ("cursor=" + cursor("2026-01-01T00:00:00+00:00|a\x00b"), "cursor"),
        ("cursor=%FF%FE", "cursor"),
    ],
)
async def test_odd_queries_are_a_400_naming_the_parameter(
    service: Running, query: str, field: str
) -> None:
    got, answer = await send(service, "GET", "/v1/incidents?" + query, b"")
    assert (got, fields(answer)) == (400, [field]), answer


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/v1/reports/fuzzer/a%00b", "admin"),
        ("/v1/reports/%ED%A0%80/x", "admin"),
        ("/v1/groups/a%00b", "admin"),
        ("/v1/groups/a%00b/deliveries", "admin"),
        ("/v1/groups/abc/updates/" + "9" * 30, "phone"),
        ("/v1/groups/abc/updates/-1", "phone"),
    ],
)
async def test_odd_path_parameters_are_not_found(service: Running, path: str, key: str) -> None:
    got, answer = await send(service, "GET", path, b"", key=key)
    assert got == 404, answer
    got, answer = await send(service, "DELETE", "/v1/silences/a%00b", b"")
    assert got == 404, answer


async def test_an_unknown_locale_is_a_400_naming_it(service: Running) -> None:
    got, answer = await send(service, "GET", "/v1/groups/abc/updates/1?locale=fr", b"", key="phone")
    assert (got, fields(answer)) == (400, ["locale"])
