"""Reporters over bad links: batches, NDJSON, and clear refusals that store nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Keys, Running, running, settings_for

ROOT = Path(__file__).resolve().parents[2]


def report(rid: str, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "source": "spotter-7",
        "kind": "shelling",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "region": "SY0703",
        "casualties": {"injured": 1},
    }
    body.update(more)
    return body


@pytest.fixture
async def service(tmp_path: Path, db_url: str) -> AsyncIterator[Running]:
    keys = Keys()
    keys.add("spotter", "reports:write")
    keys.add("reader", "read")
    settings = settings_for(tmp_path, keys, db_url=db_url, server={"max_body_bytes": 64 * 1024})
    async with running(settings, keys) as svc:
        yield svc


async def test_a_batch_gives_each_report_its_own_result(service: Running) -> None:
    b1 = report("b1")
    batch = [b1, report("b2", kind="meteor"), b1, report("b3", revision=2)]
    status, body = await service.post("/v1/reports", batch, key="spotter")
    assert status == 200
    assert [r["status"] for r in body["results"]] == [202, 422, 200, 202]
    assert [r["outcome"] for r in body["results"]] == [
        "accepted",
        "invalid",
        "duplicate",
        "accepted",
    ]
    assert body["results"][1]["errors"] == [
        {"field": "kind", "message": body["results"][1]["errors"][0]["message"]}
    ]
    assert {k: body[k] for k in ("accepted", "duplicate", "stale", "conflict", "invalid")} == {
        "accepted": 2, "duplicate": 1, "stale": 0, "conflict": 0, "invalid": 1,
    }  # fmt: skip
    first, _, retry, revised = body["results"]
    assert {k: first[k] for k in ("index", "id", "source", "revision", "region", "merged")} == {
        "index": 0, "id": "b1", "source": "spotter-7", "revision": 1, "region": "SY0703",
        "merged": False,
    }  # fmt: skip
    assert retry["incident"] == first["incident"], "the retry is the report already held"
    assert "report" not in first, "a batch answer does not echo the reports"
    assert revised["revision"] == 2
    assert await service.service.store.count_reports() == 2


async def test_a_revision_sent_again_with_other_counts_is_refused(service: Running) -> None:
    """A reporter's app reuses revision 1 for a correction: 409 says which revision holds
    what, and how to correct it; nothing changes. The very same report again is a 200."""
    sent = report("c1", casualties={"killed": 3})
    status, _ = await service.post("/v1/reports", sent, key="spotter")
    assert status == 202
    status, body = await service.post("/v1/reports", sent, key="spotter")
    assert (status, body["status"]) == (200, "duplicate")

    status, body = await service.post(
        "/v1/reports", {**sent, "casualties": {"killed": 5}}, key="spotter"
    )
    assert status == 409
    assert body["title"] == "Conflicting resend"
    assert body["detail"] == (
        "revision 1 is stored with other counts (killed 3, not 5); "
        "send it as revision 2 to correct it"
    )
    assert body["differs"] == ["casualties.killed"]
    assert body["errors"] == [{"field": "casualties.killed", "message": "stored 3, sent 5"}]
    assert body["stored"]["casualties"]["killed"] == 3
    assert body["stored"]["revision"] == 1

    stale = report("c1", casualties={"killed": 6}, revision=2)
    status, _ = await service.post("/v1/reports", stale, key="spotter")
    assert status == 202
    batch = [
        {**sent, "casualties": {"killed": 4}, "status": "confirmed"},  # revision 1: conflict
        sent,  # revision 1 as held: duplicate
        report("c2"),
    ]
    status, body = await service.post("/v1/reports", batch, key="spotter")
    assert status == 200
    assert [(r["status"], r["outcome"]) for r in body["results"]] == [
        (409, "conflict"), (200, "duplicate"), (202, "accepted"),
    ]  # fmt: skip
    assert {k: body[k] for k in ("accepted", "duplicate", "stale", "conflict", "invalid")} == {
        "accepted": 1, "duplicate": 1, "stale": 0, "conflict": 1, "invalid": 0,
    }  # fmt: skip
    assert body["results"][0]["differs"] == ["casualties.killed", "status"]
    _, held = await service.get("/v1/reports/spotter-7/c1", key="reader")
    assert [r["casualties"]["killed"] for r in held["revisions"]] == [3, 6], "nothing changed"
    async with service.http.get(
        service.url + "/metrics",
        headers={"Authorization": f"Bearer {service.keys.plain['reader']}"},
    ) as resp:
        metrics = await resp.text()
    assert 'dispatcher_reports_total{outcome="conflict"} 2.0' in metrics


async def test_ndjson_batches_are_accepted(service: Running) -> None:
    # Lines end at LF only: U+2028, U+2029 and U+0085 inside a string are text.
    odd = "a\u2028b\u2029c\u0085d"
    lines = (
        "\n".join(json.dumps(report(f"n{i}", notes=odd), ensure_ascii=False) for i in range(50))
        + '\n{"id": "cut-off\n'
    )
    assert len(lines.splitlines()) > 51, "what splitting on every line break would break"

    async with service.http.post(
        service.url + "/v1/reports",
        data=lines.encode(),
        headers={
            "Authorization": f"Bearer {service.keys.plain['spotter']}",
            "Content-Type": "application/x-ndjson",
        },
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["accepted"] == 50
    assert body["invalid"] == 1, "a line cut off by a bad link fails alone"
    assert body["results"][50]["errors"][0]["field"] == "(line)"
    assert await service.service.store.count_reports() == 50
    _, held = await service.get("/v1/reports/spotter-7/n7", key="reader")
    assert held["revisions"][0]["notes"] == odd


async def raw(service: Running, data: bytes, ctype: str) -> tuple[int, str, Any]:
    async with service.http.post(
        service.url + "/v1/reports",
        data=data,
        headers={"Authorization": f"Bearer {service.keys.plain['spotter']}", "Content-Type": ctype},
    ) as resp:
        return resp.status, resp.content_type, await resp.json(content_type=None)


async def test_refusals_are_problem_documents_and_store_nothing(service: Running) -> None:
    status, ctype, body = await raw(service, b'{"id": ', "application/json")
    assert (status, ctype) == (400, "application/problem+json")
    assert "not valid JSON" in body["detail"]

    status, ctype, body = await raw(service, b"id=1", "application/x-www-form-urlencoded")
    assert (status, ctype) == (415, "application/problem+json")

    big = json.dumps([report(f"big{i}", notes="x" * 1000) for i in range(100)]).encode()
    status, ctype, body = await raw(service, big, "application/json")
    assert (status, ctype) == (413, "application/problem+json")

    status, _, body = await raw(service, json.dumps([]).encode(), "application/json")
    assert status == 422

    assert await service.service.store.count_reports() == 0


def sighting(rid: str, source: str, lat: float, **more: Any) -> dict[str, Any]:
    body = report(rid, source=source, location={"lat": lat, "lon": 36.52}, **more)
    del body["region"]
    return body


async def test_two_observers_of_one_strike_are_one_incident(service: Running) -> None:
    status, first = await service.post(
        "/v1/reports",
        sighting("o-1", "observatory", 36.12, casualties={"killed": 3, "injured": 2}),
        key="spotter",
    )
    assert status == 202
    assert first["merged"] is False
    status, second = await service.post(
        "/v1/reports",
        sighting("s-1", "spotter-7", 36.121, status="confirmed",
                 casualties={"killed": 2, "injured": 6}),
        key="spotter",
    )  # fmt: skip
    assert status == 202
    assert second["merged"] is True, "111 m away, same kind and time, another source"
    assert second["report"]["incident"] == first["report"]["incident"]
    status, _ = await service.post(
        "/v1/reports", sighting("f-1", "field-app", 36.2, kind="fire"), key="spotter"
    )
    assert status == 202

    status, body = await service.get("/v1/incidents?region=SY07", key="spotter")
    assert status == 403, "listing needs the read scope"
    status, body = await service.get("/v1/incidents?region=SY07&kind=shelling", key="reader")
    assert status == 200
    (incident,) = body["incidents"]
    assert incident["id"] == first["report"]["incident"]
    assert incident["casualties"] == {"killed": 3, "injured": 6, "trapped": 0, "rescued": 0}
    assert incident["confirmed"] is True
    assert incident["region"]["path"] == ["SY07", "SY0703"]
    assert sorted(r["source"] for r in incident["reports"]) == ["observatory", "spotter-7"]

    status, body = await service.get("/v1/incidents?kind=fire", key="reader")
    assert [i["kind"] for i in body["incidents"]] == ["fire"]


async def test_incidents_page_newest_first(service: Running) -> None:
    for i in range(5):
        when = (datetime.now(UTC) - timedelta(minutes=50 - i)).isoformat()
        status, _ = await service.post(
            "/v1/reports", report(f"p{i}", occurred_at=when), key="spotter"
        )
        assert status == 202
    seen: list[str] = []
    path = "/v1/incidents?limit=2"
    while True:
        status, body = await service.get(path, key="reader")
        assert status == 200
        seen += [i["reports"][0]["id"] for i in body["incidents"]]
        if "next_cursor" not in body:
            break
        path = f"/v1/incidents?limit=2&cursor={body['next_cursor']}"
    assert seen == ["p4", "p3", "p2", "p1", "p0"]
    since = (datetime.now(UTC) - timedelta(minutes=47, seconds=30)).isoformat()
    status, body = await service.get(
        "/v1/incidents?since=" + since.replace("+", "%2B"), key="reader"
    )
    assert [i["reports"][0]["id"] for i in body["incidents"]] == ["p4", "p3"]
    status, body = await service.get("/v1/incidents?limit=0&kind=meteor", key="reader")
    assert status == 400
    assert sorted(e["field"] for e in body["errors"]) == ["kind", "limit"]


async def test_the_shipped_rules_take_every_cod_ab_p_code(tmp_path: Path) -> None:
    """Reporters send OCHA's P-codes: each is known; one COD-AB lacks is refused by field."""
    keys = Keys()
    keys.add("spotter", "reports:write")
    settings = settings_for(tmp_path, keys, rules={"path": str(ROOT / "rules")})
    async with running(settings, keys) as service:
        status, body = await service.post("/v1/reports", report("ariha", region="SY0705"),
                                          key="spotter")  # fmt: skip
        assert status == 202, body
        assert body["region"] == {
            "id": "SY0705", "path": ["SY", "SY07", "SY0705"], "name": "Ariha",
            "name_ar": "أريحا",
        }  # fmt: skip

        codes = ["SY", "SY02", "SY07", *[f"SY020{n}" for n in (0, 2, 3, 4, 5, 6, 7, 8)],
                 "SY0700", "SY0702", "SY0703", "SY0704"]  # fmt: skip
        status, body = await service.post(
            "/v1/reports", [report(f"code-{c}", region=c) for c in codes], key="spotter"
        )
        assert status == 200
        assert [(r["status"], r["region"]) for r in body["results"]] == [(202, c) for c in codes]

        for fake in ("SY0701", "SY0201"):
            status, body = await service.post("/v1/reports", report(fake, region=fake),
                                              key="spotter")  # fmt: skip
            assert status == 422, f"{fake} is not in COD-AB"
            assert [e["field"] for e in body["errors"]] == ["region"]

        atarib = report("atarib", location={"lat": 36.1386, "lon": 36.8296}, kind="airstrike")
        del atarib["region"]
        status, body = await service.post("/v1/reports", atarib, key="spotter")
        assert status == 202
        assert body["region"]["path"] == ["SY", "SY02", "SY0200"], "Jebel Saman, Aleppo"
        assert body["routes"] == ["aleppo"], "the Aleppo team, not Harim's or Idleb's"
