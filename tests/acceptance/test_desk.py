"""The desk over HTTP: signing in, the session cookie, CSRF, read versus admin, the map's
calls, the rule tester, the live feed's replay, groups, silences and the rules diff."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dispatcher.app import build, make_app
from dispatcher.feed import FeedHub
from dispatcher.intake import parse_report, to_report
from dispatcher.rules.explain import explain
from dispatcher.settings import Settings
from dispatcher.testing.clock import ManualClock
from dispatcher.web.desk.state import SIGN_IN_FAILURES
from tests.support.desk import CSRF_META, DeskClient, desk_client
from tests.support.harness import TESTDATA, Keys, Running, running, settings_for
from tests.support.waiting import until

NOW = datetime.now(UTC).replace(microsecond=0)


def report(rid: str, *, lat: float = 36.2, lon: float = 36.6, **more: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "source": more.pop("source", "observatory"),
        "kind": more.pop("kind", "airstrike"),
        "occurred_at": more.pop("occurred_at", (NOW - timedelta(minutes=5)).isoformat()),
        "location": {"lat": lat, "lon": lon},
        "casualties": more.pop("casualties", {"killed": 2, "injured": 5}),
        **more,
    }


def keys() -> Keys:
    k = Keys()
    k.add("duty-officer", "admin")
    k.add("viewer", "read")
    k.add("observatory", "reports:write")
    return k


@asynccontextmanager
async def desk(tmp_path: Path, **sections: Any) -> AsyncIterator[tuple[Running, DeskClient]]:
    k = keys()
    async with running(settings_for(tmp_path, k, **sections), k) as r, desk_client(r.url) as c:
        yield r, c


async def test_sign_in_gives_a_strict_http_only_session_and_only_desk_keys_get_one(
    tmp_path: Path,
) -> None:
    async with desk(tmp_path) as (r, c):
        status, _ = await c.page("/desk/")
        assert status == 303  # to the sign-in page
        status, body = await c.get("/desk/api/incidents")
        assert (status, body["detail"]) == (401, "sign in at /desk/login")
        assert await c.sign_in("not-a-key") == 401
        assert await c.sign_in(r.keys.plain["observatory"]) == 401  # reports:write only
        async with c.http.post(
            c.url + "/desk/login",
            data={"key": r.keys.plain["viewer"]},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/desk/"
            cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/desk/" in cookie
        assert r.keys.plain["viewer"] not in cookie
        status, page = await c.page("/desk/")
        assert status == 200
        assert 'id="key-name">viewer<' in page
        found = CSRF_META.search(page)
        assert found is not None
        c.csrf = found.group(1)
        # A Bearer key is not a desk credential, and the cookie is not an API credential.
        async with aiohttp.ClientSession() as bare:
            headers = {"Authorization": f"Bearer {r.keys.plain['duty-officer']}"}
            async with bare.get(c.url + "/desk/api/incidents", headers=headers) as resp:
                assert resp.status == 401
        status, _ = await c.get("/v1/incidents")
        assert status == 401
        # Signing out ends the session on the server, not only in the browser.
        assert (await c.send("POST", "/desk/logout"))[0] == 200
        status, _ = await c.get("/desk/api/incidents")
        assert status == 401


async def test_revoking_a_key_ends_its_desk_sessions(tmp_path: Path) -> None:
    async with desk(tmp_path) as (r, c):
        status, made = await r.post(
            "/v1/admin/keys", {"name": "night-shift", "scopes": ["read"]}, key="duty-officer"
        )
        assert status == 201
        assert await c.sign_in(made["key"]) == 303
        status, _ = await c.get("/desk/api/groups")
        assert status == 200
        status, _ = await r.delete(f"/v1/admin/keys/{made['id']}", key="duty-officer")
        assert status == 200
        status, body = await c.get("/desk/api/groups")
        assert (status, body["detail"]) == (401, "sign in at /desk/login")
        status, _ = await c.page("/desk/")
        assert status == 303


async def test_a_login_form_posted_from_another_site_is_refused(tmp_path: Path) -> None:
    async with (
        desk(tmp_path) as (r, c),
        c.http.post(
            c.url + "/desk/login",
            data={"key": r.keys.plain["duty-officer"]},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            allow_redirects=False,
        ) as resp,
    ):
        assert resp.status == 403
        assert "Set-Cookie" not in resp.headers


async def sign_in_from(c: DeskClient, key: str, address: str) -> tuple[int, str, str]:
    """(status, Retry-After, page) of a sign-in from `address`, as a trusted proxy says."""
    async with c.http.post(
        c.url + "/desk/login",
        data={"key": key},
        headers={"X-Forwarded-For": address},
        allow_redirects=False,
    ) as resp:
        assert (resp.status == 303) == ("Set-Cookie" in resp.headers)
        return resp.status, resp.headers.get("Retry-After", ""), await resp.text()


async def test_wrong_keys_shut_their_address_out_of_sign_in_for_a_while(
    tmp_path: Path,
) -> None:
    clock = ManualClock(NOW)
    k = keys()
    viewer = k.plain["viewer"]
    settings = settings_for(tmp_path, k, server={"trusted_proxies": ["127.0.0.1/32"]})
    async with running(settings, k, clock=clock) as r, desk_client(r.url) as c:
        guesser, colleague = "198.51.100.7", "203.0.113.5"
        for n in range(SIGN_IN_FAILURES):
            assert (await sign_in_from(c, f"guess-{n}", guesser))[0] == 401
        status, wait, page = await sign_in_from(c, viewer, guesser)
        assert (status, wait) == (429, "600"), "even the right key, once this address guessed"
        assert "try again in 10\u00a0min" in page
        assert (await sign_in_from(c, viewer, colleague))[0] == 303, "others sign in"
        clock.advance(timedelta(minutes=4))
        status, wait, _ = await sign_in_from(c, viewer, guesser)
        assert (status, wait) == (429, "360")
        clock.advance(timedelta(minutes=6))
        assert (await sign_in_from(c, viewer, guesser))[0] == 303

        # Signing in clears the address's failures: a mistyped key or two a day adds up to
        # nothing, but the limit still holds within the window.
        for n in range(SIGN_IN_FAILURES - 1):
            assert (await sign_in_from(c, f"typo-{n}", colleague))[0] == 401
        assert (await sign_in_from(c, viewer, colleague))[0] == 303
        for n in range(SIGN_IN_FAILURES - 1):
            assert (await sign_in_from(c, f"typo-{n}", colleague))[0] == 401
        assert (await sign_in_from(c, viewer, colleague))[0] == 303
        for n in range(SIGN_IN_FAILURES):
            assert (await sign_in_from(c, f"typo-{n}", colleague))[0] == 401
        assert (await sign_in_from(c, viewer, colleague))[0] == 429


async def test_writes_need_the_csrf_token_and_the_same_origin(tmp_path: Path) -> None:
    body = {"matchers": {"regions": ["SY0703"]}, "duration": "1h", "reason": "drill"}
    async with desk(tmp_path) as (r, c):
        assert await c.sign_in(r.keys.plain["duty-officer"]) == 303
        status, problem = await c.send("POST", "/desk/api/silences", body, csrf="")
        assert (status, problem["detail"]) == (403, "send the session's X-CSRF-Token header")
        status, problem = await c.send("POST", "/desk/api/silences", body, csrf="forged")
        assert status == 403
        status, problem = await c.send(
            "POST", "/desk/api/silences", body, headers={"Origin": "https://evil.example"}
        )
        assert (status, problem["detail"]) == (403, "a write from another site is refused")
        status, problem = await c.send(
            "POST", "/desk/api/silences", body, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert status == 403
        _, listed = await c.get("/desk/api/silences")
        assert listed["silences"] == []
        status, made = await c.send("POST", "/desk/api/silences", body, headers={"Origin": c.url})
        assert status == 201
        assert made["author"] == "duty-officer"  # the signed-in key's name, not the form's
        assert made["matchers"]["regions"] == ["SY0703"]


async def test_a_read_key_sees_no_write_controls_and_its_writes_are_refused(
    tmp_path: Path,
) -> None:
    body = {"matchers": {"regions": ["SY0703"]}, "duration": "1h", "reason": "drill"}
    async with desk(tmp_path) as (r, c):
        assert await c.sign_in(r.keys.plain["viewer"]) == 303
        _, silences = await c.page("/desk/silences")
        assert 'id="silence-form"' not in silences
        assert 'id="read-only"' in silences
        _, rules = await c.page("/desk/rules")
        assert 'id="reload"' not in rules
        for method, path, sent in [
            ("POST", "/desk/api/silences", body),
            ("POST", "/desk/api/silences/preview", body),
            ("DELETE", "/desk/api/silences/abc", None),
            ("POST", "/desk/api/rules/reload", None),
        ]:
            status, problem = await c.send(method, path, sent)
            assert (status, problem["detail"]) == (
                403,
                "the key 'viewer' lacks the scope 'admin'",
            ), path
        async with desk_client(r.url) as admin:
            assert await admin.sign_in(r.keys.plain["duty-officer"]) == 303
            _, page = await admin.page("/desk/silences")
            assert 'id="silence-form"' in page
            assert 'id="read-only"' not in page


async def test_the_map_gets_the_days_incidents_with_their_counts_in_force(tmp_path: Path) -> None:
    async with desk(tmp_path) as (r, c):
        batch = [
            report("a1", casualties={"killed": 2, "injured": 5}),
            # another observer of the same strike, 100 m away: merged, higher injured
            report(
                "b1", source="civil-defence", lat=36.2009, casualties={"killed": 1, "injured": 9}
            ),
            report(
                "c1", kind="shelling", lat=35.9, lon=36.7, casualties={"killed": 0, "trapped": 3}
            ),
            report("old", occurred_at=(NOW - timedelta(days=2)).isoformat()),
        ]
        status, _ = await r.post("/v1/reports", batch, key="observatory")
        assert status == 200
        assert await c.sign_in(r.keys.plain["viewer"]) == 303
        status, body = await c.get("/desk/api/incidents?since=24h")
        assert status == 200
        rows = [dict(zip(body["columns"], row, strict=True)) for row in body["incidents"]]
        got = sorted(
            (x["kind"], x["region"], x["killed"], x["injured"], x["trapped"]) for x in rows
        )
        assert got == [("airstrike", "SY0703", 2, 9, 0), ("shelling", "SY07", 0, 0, 3)]
        assert body["capped"] is False
        status, body = await c.get("/desk/api/incidents?since=24h&kind=shelling")
        assert [row[1] for row in body["incidents"]] == ["shelling"]
        status, body = await c.get("/desk/api/incidents?since=24h&region=Harim")
        assert [row[3] for row in body["incidents"]] == ["SY0703"]
        # harim-center hears only of Harim; idleb-center of both
        _, body = await c.get("/desk/api/incidents?since=24h&team=harim-center")
        assert [row[3] for row in body["incidents"]] == ["SY0703"]
        _, body = await c.get("/desk/api/incidents?since=24h&team=idleb-center")
        assert len(body["incidents"]) == 2
        status, problem = await c.get("/desk/api/incidents?kind=meteor&team=nobody")
        assert status == 400
        assert [e["field"] for e in problem["errors"]] == ["kind", "team"]
        # The incident's panel: both reports, and whose figure is in force.
        merged = next(x for x in rows if x["kind"] == "airstrike")
        status, panel = await c.get(f"/desk/api/incidents/{merged['id']}")
        assert status == 200
        # Both are observers (tier "other"): the largest figure, its source, and the range.
        assert panel["in_force"]["killed"] == {
            "value": 2, "from": ["observatory"], "tier": "other", "low": 1, "high": 2
        }  # fmt: skip
        assert panel["in_force"]["injured"] == {
            "value": 9, "from": ["civil-defence"], "tier": "other", "low": 5, "high": 9
        }  # fmt: skip
        assert sorted(x["source"] for x in panel["reports"]) == ["civil-defence", "observatory"]
        assert panel["region"]["name_ar"] == "حارم"
        # Counted in the database as the API counts them: a retraction drops its figures.
        retraction = report(
            "b1", source="civil-defence", lat=36.2009, revision=2, status="retracted"
        )
        await r.post("/v1/reports", retraction, key="observatory")
        _, body = await c.get("/desk/api/incidents?since=24h")
        rows = [dict(zip(body["columns"], row, strict=True)) for row in body["incidents"]]
        _, api = await r.get("/v1/incidents?limit=10", key="viewer")
        assert {(x["id"], x["killed"], x["injured"], x["trapped"], x["live_reports"])
                for x in rows} == {
            (x["id"], x["casualties"]["killed"], x["casualties"]["injured"],
             x["casualties"]["trapped"], x["live_reports"])
            for x in api["incidents"]
            if datetime.fromisoformat(x["occurred_at"]) >= datetime.fromisoformat(body["since"])
        }  # fmt: skip
        airstrike = next(x for x in rows if x["kind"] == "airstrike")
        assert (airstrike["killed"], airstrike["injured"], airstrike["live_reports"]) == (2, 5, 1)


async def test_the_outlines_are_the_rule_sets_regions(tmp_path: Path) -> None:
    async with desk(tmp_path) as (r, c):
        assert await c.sign_in(r.keys.plain["viewer"]) == 303
        async with c.http.get(c.url + "/desk/api/regions.geojson") as resp:
            assert resp.status == 200
            assert resp.content_type == "application/geo+json"
            geo = await resp.json(content_type=None)
        assert [f["properties"]["id"] for f in geo["features"]] == ["SY07", "SY0703"]
        assert geo["features"][1]["properties"]["name_ar"] == "حارم"
        assert geo["version"] == r.service.rules.current.version


async def test_the_rule_tester_answers_as_rules_test_does(tmp_path: Path) -> None:
    async with desk(tmp_path) as (r, c):
        assert await c.sign_in(r.keys.plain["viewer"]) == 303
        status, answer = await c.get("/desk/api/test?lat=36.2&lon=36.6&kind=airstrike&killed=12")
        assert status == 200
        rules = r.service.rules.current
        parsed = parse_report(
            {
                "id": "dry-run",
                "source": "cli",
                "kind": "airstrike",
                "occurred_at": NOW.isoformat(),
                "location": {"lat": 36.2, "lon": 36.6},
                "casualties": {"killed": 12, "injured": 0, "trapped": 0},
            },
            now=NOW,
            resolve_region=rules.resolve_region,
        )
        assert not isinstance(parsed, list)
        cli = explain(rules, to_report(parsed, region=rules.locate(None, 36.2, 36.6)))
        assert answer["routes"] == cli["routes"]
        assert [x["path"] for x in answer["routes"]] == [
            ["root", "mass-casualty"],
            ["root", "harim"],
            ["root", "idleb"],
        ]
        assert answer["routes"][0]["leaders"] == [
            {"id": "idleb-lead-2", "name": "Sara", "locale": "en"}
        ]
        assert answer["region"]["id"] == "SY0703"
        status, problem = await c.get("/desk/api/test?kind=airstrike")
        assert (status, problem["errors"][0]["field"]) == (400, "location")


async def read_events(resp: aiohttp.ClientResponse, n: int) -> list[tuple[str, str, Any]]:
    """The next `n` events of a Server-Sent Events stream: (id, event, data)."""
    events: list[tuple[str, str, Any]] = []
    frame: dict[str, str] = {}
    async with asyncio.timeout(10):
        while len(events) < n:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line == "":
                if "data" in frame:
                    events.append((frame.get("id", ""), frame.get("event", "message"),
                                   json.loads(frame["data"])))  # fmt: skip
                frame = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                frame[name] = value
    return events


async def test_the_feed_replays_from_last_event_id_and_says_reload_after_a_long_gap(
    tmp_path: Path,
) -> None:
    async with desk(tmp_path) as (r, c):
        assert await c.sign_in(r.keys.plain["viewer"]) == 303
        sent = [
            report("a1"),
            report("a1"),  # the same again: a duplicate
            report("b1", source="civil-defence", lat=36.2005),  # merged into a1's incident
            report("a1", revision=2, casualties={"killed": 3, "injured": 5}),  # revised
            report("a1", revision=1, casualties={"killed": 9}),  # held otherwise: conflict
            report("a1", revision=3, status="retracted"),
            report("s1", revision=2, lat=35.6),
            report("s1", revision=1, lat=35.6),  # older than the one held: stale
        ]
        for item in sent:
            await r.post("/v1/reports", item, key="observatory")
        async with c.http.get(c.url + "/desk/api/feed", headers={"Last-Event-ID": "0"}) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/event-stream"
            events = await read_events(resp, 8)
        assert [(i, e, d["outcome"]) for i, e, d in events] == [
            ("1", "report", "new"),
            ("2", "report", "duplicate"),
            ("3", "report", "merged"),
            ("4", "report", "revised"),
            ("5", "report", "conflict"),
            ("6", "report", "retracted"),
            ("7", "report", "revised"),
            ("8", "report", "stale"),
        ]
        assert events[3][2]["casualties"]["killed"] == 3
        assert events[0][2]["region_name_ar"] == "حارم"
        assert events[0][2]["incident"] == events[2][2]["incident"]
        # Reconnecting after event 6 gets 7 and 8 only, then what comes next.
        async with c.http.get(c.url + "/desk/api/feed", headers={"Last-Event-ID": "6"}) as resp:
            first = await read_events(resp, 2)
            await r.post("/v1/reports", report("z1", lat=35.9), key="observatory")
            later = await read_events(resp, 1)
        assert [i for i, _, _ in first + later] == ["7", "8", "9"]
        assert later[0][2]["outcome"] == "new"
        # An id the service never gave (it restarted since) is a reload.
        async with c.http.get(c.url + "/desk/api/feed?after=999") as resp:
            ((i, event, data),) = await read_events(resp, 1)
        assert (i, event, data) == ("9", "reload", {"last_id": 9})


@asynccontextmanager
async def small_ring(settings: Settings, size: int) -> AsyncIterator[str]:
    service = await build(settings)
    service.pipeline.feed = FeedHub(size=size)
    runner = web.AppRunner(make_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await service.close()


async def test_a_gap_longer_than_the_ring_is_a_reload(tmp_path: Path) -> None:
    k = keys()
    async with (
        small_ring(settings_for(tmp_path, k), size=3) as url,
        desk_client(url) as c,
        aiohttp.ClientSession() as api,
    ):
        headers = {"Authorization": f"Bearer {k.plain['observatory']}"}
        batch = [report(f"r{i}", lat=35.5 + i / 100) for i in range(5)]
        async with api.post(url + "/v1/reports", json=batch, headers=headers) as resp:
            assert resp.status == 200
        assert await c.sign_in(k.plain["viewer"]) == 303
        async with c.http.get(c.url + "/desk/api/feed", headers={"Last-Event-ID": "1"}) as resp:
            ((i, event, data),) = await read_events(resp, 1)
        assert (i, event, data) == ("5", "reload", {"last_id": 5})  # 2 has left the ring
        async with c.http.get(c.url + "/desk/api/feed", headers={"Last-Event-ID": "2"}) as resp:
            events = await read_events(resp, 3)
        assert [(i, e) for i, e, _ in events] == [("3", "report"), ("4", "report"), ("5", "report")]


async def test_groups_say_what_is_pending_and_a_silence_previews_and_holds_them(
    tmp_path: Path,
) -> None:
    async with desk(tmp_path, scheduler={"tick": "1h"}) as (r, c):
        await r.post("/v1/reports", report("a1"), key="observatory")
        assert await c.sign_in(r.keys.plain["duty-officer"]) == 303
        _, body = await c.get("/desk/api/groups")
        by_route = {g["route"]: g for g in body["groups"]}
        assert sorted(by_route) == ["harim", "idleb"]
        harim = by_route["harim"]
        assert (harim["receiver"], harim["pending"], harim["reports"]) == ("harim-center", True, 1)
        assert harim["region"]["name"] == "Harim"
        assert harim["quiet"] == []
        silence = {"matchers": {"receivers": ["harim-center"]}, "duration": "2h", "reason": "drill"}
        status, preview = await c.send("POST", "/desk/api/silences/preview", silence)
        assert status == 200
        assert [g["id"] for g in preview["groups"]] == [harim["id"]]
        _, listed = await c.get("/desk/api/silences")
        assert listed["silences"] == []  # a preview stores nothing
        status, made = await c.send("POST", "/desk/api/silences", silence)
        assert (status, made["holds"]) == (201, [harim["id"]])
        _, body = await c.get("/desk/api/groups")
        quiet = {g["route"]: g["quiet"] for g in body["groups"]}
        assert quiet["idleb"] == []
        assert [(q["why"], q["id"], q["author"]) for q in quiet["harim"]] == [
            ("silence", made["id"], "duty-officer")
        ]
        _, page = await c.page("/desk/groups")
        assert "drill" in page
        status, expired = await c.send("DELETE", f"/desk/api/silences/{made['id']}")
        assert (status, expired["state"]) == (200, "expired")
        _, body = await c.get("/desk/api/groups")
        assert all(g["quiet"] == [] for g in body["groups"])
        # A bad matcher is named.
        bad = {"matchers": {"regions": ["Atlantis"]}, "duration": "2h", "reason": "x"}
        status, problem = await c.send("POST", "/desk/api/silences/preview", bad)
        assert (status, problem["errors"][0]["field"]) == (422, "matchers.regions[0]")


async def test_a_groups_deliveries_page_says_who_was_not_reached(tmp_path: Path) -> None:
    async with desk(tmp_path) as (r, c):
        await r.post("/v1/reports", report("a1"), key="observatory")
        assert await c.sign_in(r.keys.plain["viewer"]) == 303
        _, body = await c.get("/desk/api/groups")
        harim = next(g for g in body["groups"] if g["route"] == "harim")
        # group_wait is 1 s in these rules: the update is written, then tried.
        _, deliveries = await until(
            lambda: c.get(f"/desk/api/groups/{harim['id']}/deliveries"),
            lambda got: got[1]["deliveries"] and got[1]["counts"]["pending"] == 0,
            what="the group's deliveries, none pending",
        )
        # Omar has no phone registered: kept as failed, so the desk can say so.
        assert [(d["leader"], d["status"]) for d in deliveries["deliveries"]] == [
            ("harim-lead-1", "failed")
        ]
        status, page = await c.page(f"/desk/groups/{harim['id']}")
        assert status == 200
        assert "Omar" in page
        assert "status-failed" in page


async def test_the_rules_page_shows_a_refused_edit_and_the_diff_names_who_gains_and_loses(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(TESTDATA / "rules-e2e", folder)
    async with desk(tmp_path, rules={"path": str(folder), "watch": False}) as (r, c):
        await r.post("/v1/reports", report("a1"), key="observatory")
        assert await c.sign_in(r.keys.plain["duty-officer"]) == 303
        first = r.service.rules.current.version
        routes = folder / "routes.yaml"
        original = routes.read_text()
        routes.write_text(original.replace("receiver: harim-center", "receiver: harim-centre"))
        status, _problem = await c.send("POST", "/desk/api/rules/reload")
        assert status == 422
        _, page = await c.page("/desk/rules")
        assert 'id="rule-errors"' in page
        assert f"{routes}:" in page  # file:line:column
        assert "harim-centre" in page
        routes.write_text(original.replace("receiver: harim-center", "receiver: idleb-center"))
        status, applied = await c.send("POST", "/desk/api/rules/reload")
        assert status == 200
        second = applied["version"]
        _, page = await c.page("/desk/rules")
        assert 'id="rule-errors"' not in page
        status, diff = await c.get(f"/desk/api/rules/diff?old={first}&new={second}")
        assert status == 200
        assert diff["replayed"] == 1
        assert diff["leaders"] == {"harim-lead-1": {"lost": ["observatory/a1"]}}
        status, page = await c.page(f"/desk/rules/diff?old={first}&new={second}")
        assert status == 200
        assert 'data-leader="harim-lead-1"' in page
        status, _ = await c.get(f"/desk/api/rules/diff?old=000000000000&new={second}")
        assert status == 404


@pytest.mark.parametrize(("lang", "direction"), [("ar", "rtl"), ("en", "ltr")])
async def test_the_desk_speaks_arabic_right_to_left(
    tmp_path: Path, lang: str, direction: str
) -> None:
    async with desk(tmp_path) as (r, c):
        assert await c.sign_in(r.keys.plain["viewer"]) == 303
        async with c.http.get(
            c.url + f"/desk/lang?l={lang}&next=/desk/groups", allow_redirects=False
        ) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/desk/groups")
        _, page = await c.page("/desk/groups")
        assert f'<html lang="{lang}" dir="{direction}">' in page
        assert ("مجموعات التنبيه المفتوحة" in page) == (lang == "ar")
