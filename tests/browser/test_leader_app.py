"""The leaders' app in a real Chromium, on a phone-sized screen, against the real service.

One browser for the module, a fresh browser profile (context) and a fresh service (real
port, real SQLite file, console channel, the clock in the test's hands) for each test.
Rules: tests/testdata/rules-e2e. A report is posted to the API as an observatory would, a
tick makes the update, and the test reads and taps the page as a leader would.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dispatcher.testing.clock import ManualClock
from tests.support.browser import (
    ARGS,
    CHROMIUM,
    PHONE,
    STORED_KEY,
    a_code,
    controlled,
    needs_chromium,
    notifications,
    pair,
    push_to_worker,
    screenshot,
)
from tests.support.harness import TESTDATA, Keys, Running, running, settings_for
from tests.support.waiting import until

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

pytestmark = [needs_chromium, pytest.mark.asyncio(loop_scope="module")]

HARIM = {"lat": 36.12, "lon": 36.52}  # in SY0703 Harim, in SY07 Idleb
NOW = datetime.now(UTC).replace(microsecond=0)
S = timedelta(seconds=1)


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("observatory", "reports:write")
    k.add("reader", "read")
    k.add("desk", "admin")
    k.add("phone-idleb-lead-1", "devices:write", leader="idleb-lead-1")
    return k


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest_asyncio.fixture(loop_scope="module")
async def svc(tmp_path: Path, keys: Keys, clock: ManualClock) -> AsyncIterator[Running]:
    rules = tmp_path / "rules"
    shutil.copytree(TESTDATA / "rules-e2e", rules)
    (rules / "sources.yaml").write_text("sources:\n  own: [team-harim]\n  trusted: [observatory]\n")
    # The test ticks by hand.
    settings = settings_for(tmp_path, keys, rules={"path": str(rules)}, scheduler={"tick": "1h"})
    async with running(settings, keys, clock=clock) as s:
        yield s


async def a_strike(svc: Running, clock: ManualClock) -> str:
    """Post a report from Harim and let its first update go out; the Idleb group's id."""
    status, body = await svc.post(
        "/v1/reports",
        {"id": "obs-1", "source": "observatory", "kind": "airstrike",
         "occurred_at": (NOW - 3 * 60 * S).isoformat(), "location": HARIM,
         "casualties": {"killed": 2, "injured": 7, "trapped": 3}},
        key="observatory",
    )  # fmt: skip
    assert status == 202, body
    clock.advance(S)
    await svc.service.pipeline.tick()
    group_id: str = body["groups"][1]
    return group_id


async def test_arabic_first_right_to_left_and_english_on_a_toggle(
    page: Any, svc: Running, tmp_path: Path
) -> None:
    await page.goto(svc.url + "/app/#pair=ABCD2345")
    await expect(page.locator("#pair h2")).to_have_text("ربط هذا الهاتف")
    await expect(page.locator("#code")).to_have_value("ABCD2345")  # from the QR code's link
    assert await page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert await page.evaluate("document.documentElement.lang") == "ar"
    # Large type: the base is at least 18 px.
    size = await page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert size >= 18
    await screenshot(page, "app-pairing-ar", tmp_path)

    await page.locator("#lang").click()
    await expect(page.locator("#pair h2")).to_have_text("Pair this phone")
    assert await page.evaluate("getComputedStyle(document.body).direction") == "ltr"
    await screenshot(page, "app-pairing-en", tmp_path)
    await page.reload()
    await expect(page.locator("#pair h2")).to_have_text("Pair this phone")  # remembered


async def test_chromium_finds_the_app_installable(svc: Running, tmp_path: Path) -> None:
    """What Android's Chrome checks before it offers "Install app": a manifest with a name,
    start URL, standalone display and icons, and a service worker that serves the page.
    (Playwright's contexts are incognito, where nothing installs: a profile on disk here.)"""
    async with playwright_api.async_playwright() as pw:
        profile = await pw.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), args=ARGS, viewport=PHONE
        )
        try:
            page = await profile.new_page()
            await page.goto(svc.url + "/app/")
            await controlled(page)
            cdp = await profile.new_cdp_session(page)
            manifest = await cdp.send("Page.getAppManifest")
            assert manifest["errors"] == []
            found = await cdp.send("Page.getInstallabilityErrors")
            assert found["installabilityErrors"] == []
        finally:
            await profile.close()


async def test_pairing_with_a_code(page: Any, svc: Running, tmp_path: Path) -> None:
    pairing = await a_code(svc)
    assert pairing["url"] == f"{svc.url}/app/#pair={pairing['code'].replace('-', '')}"
    await page.goto(svc.url + "/app/")
    await page.locator("#code").fill("ABCD-2345")
    await page.locator("#pair-button").click()
    await expect(page.locator("#pair-error")).to_have_text(
        "الرمز غير صحيح أو انتهت صلاحيته أو استُخدم. اطلب رمزاً جديداً."
    )
    # Typed as the desk reads it out, in lower case with its dash: the same code.
    await page.locator("#code").fill(pairing["code"].lower())
    await page.locator("#pair-button").click()
    await expect(page.locator("#who")).to_have_text("Abu Khaled · Idleb Center")
    await expect(page.locator("#empty")).to_have_text("لا توجد تنبيهات مفتوحة لفريقك.")
    # The phone holds a key of its own now, and the code is spent.
    key = await page.evaluate(STORED_KEY)
    assert key.startswith("dk_")
    async with svc.http.get(svc.url + "/v1/me", headers={"Authorization": f"Bearer {key}"}) as r:
        assert (await r.json())["leader"]["id"] == "idleb-lead-1"
    status, _ = await svc.post("/v1/pairings/redeem", {"code": pairing["code"]}, key=None)
    assert status == 404

    await page.reload()
    await expect(page.locator("#who")).to_have_text("Abu Khaled · Idleb Center")  # kept


async def test_a_revoked_phone_forgets_its_key_and_what_it_showed(
    page: Any, svc: Running, clock: ManualClock
) -> None:
    group_id = await a_strike(svc, clock)
    await pair(page, svc)
    await expect(page.locator(f"#g-{group_id}")).to_be_visible()
    key = await page.evaluate(STORED_KEY)
    async with svc.http.get(svc.url + "/v1/me", headers={"Authorization": f"Bearer {key}"}) as r:
        key_id = (await r.json())["key_id"]
    status, _ = await svc.delete(f"/v1/admin/keys/{key_id}", key="desk")
    assert status == 200

    await page.locator("#refresh").click()
    await expect(page.locator("#pair-error")).to_have_text("أُلغي ربط هذا الهاتف. اطلب رمزاً جديداً.")
    assert await page.evaluate(STORED_KEY) is None
    await expect(page.locator(f"#g-{group_id}")).to_have_count(0)


async def test_pairing_with_a_device_key(page: Any, svc: Running) -> None:
    """A key made with `dispatcher keys new --leader` works too (no code needed)."""
    await page.goto(svc.url + "/app/")
    await page.locator("details.key summary").click()
    await page.locator("#key").fill(svc.keys.plain["phone-idleb-lead-1"])
    await page.locator("#key-form button").click()
    await expect(page.locator("#who")).to_have_text("Abu Khaled · Idleb Center")


async def test_the_group_list_and_acknowledging(
    page: Any, svc: Running, clock: ManualClock, tmp_path: Path
) -> None:
    group_id = await a_strike(svc, clock)
    await pair(page, svc)
    card = page.locator(f"#g-{group_id}")
    await expect(card.locator("h3")).to_contain_text("إدلب · حوادث جديدة: 1")
    totals = card.locator(".total dd")
    await expect(totals).to_have_text(["2", "7", "3", "0"])
    await expect(card.locator(".total dt")).to_have_text(["قتلى", "جرحى", "عالقون", "أُنقذوا"])
    await expect(card.locator(".incidents summary")).to_contain_text("الحوادث (1)")
    await card.locator(".incidents summary").click()
    await expect(card.locator(".incident")).to_contain_text("غارة جوية · حارم")
    await expect(card.locator(".acks")).to_contain_text("لم يستلمه أحد بعد.")
    await screenshot(page, "app-groups-ar", tmp_path, whole=True)

    await card.locator(".note").fill("فريقان في الطريق")
    await page.evaluate("refresh()")  # what the minute's poll does
    await expect(card.locator(".note")).to_have_value("فريقان في الطريق")  # not lost
    await card.locator("button.respond").click()
    await expect(page.locator("#toast")).to_have_text("أُرسل: نستجيب.")
    await expect(card.locator(".acks li")).to_contain_text("Abu Khaled (أنت) · يستجيب")
    await expect(card.locator(".acks q")).to_have_text("فريقان في الطريق")

    # The service has it: the team's next update tells them.
    status, group = await svc.get(f"/v1/groups/{group_id}", key="reader")
    assert status == 200
    (ack,) = group["acknowledged"]
    assert (ack["leader"], ack["responding"], ack["note"]) == (
        "idleb-lead-1", True, "فريقان في الطريق",
    )  # fmt: skip

    await page.locator("#lang").click()
    await expect(card.locator("h3")).to_contain_text("Idleb · new incidents: 1")
    await expect(card.locator(".acks li")).to_contain_text("Abu Khaled (you) · responding")
    await expect(card.locator("button.ack")).to_have_text("Acknowledge")
    await screenshot(page, "app-groups-en", tmp_path, whole=True)


async def test_where_sources_disagree_the_leader_sees_how_far_others_go(
    page: Any, svc: Running, clock: ManualClock, tmp_path: Path
) -> None:
    group_id = await a_strike(svc, clock)  # the observatory: 2 killed
    status, _ = await svc.post(
        "/v1/reports",
        {"id": "t-1", "source": "team-harim", "kind": "airstrike",
         "occurred_at": (NOW - 2 * 60 * S).isoformat(), "location": HARIM,
         "casualties": {"killed": 1, "trapped": 3}},
        key="observatory",
    )  # fmt: skip
    assert status == 202
    clock.advance(5 * S)
    await svc.service.pipeline.tick()
    await pair(page, svc)
    card = page.locator(f"#g-{group_id}")
    await expect(card.locator(".total dd")).to_have_text(["1", "7", "3", "0"])
    await expect(card.locator(".ranges")).to_have_text("مصادر أخرى: قتلى حتى 2")
    await card.locator(".incidents summary").click()
    await expect(card.locator(".incident")).to_contain_text("قتلى 1 (مصادر أخرى: حتى 2)")
    await screenshot(page, "app-sources-differ-ar", tmp_path, whole=True)


async def test_the_last_state_stays_readable_offline(
    page: Any, context: Any, svc: Running, clock: ManualClock, tmp_path: Path
) -> None:
    group_id = await a_strike(svc, clock)
    await pair(page, svc)
    await expect(page.locator(f"#g-{group_id} .total dd").first).to_have_text("2")
    await controlled(page)

    await context.set_offline(True)
    await page.reload()
    await expect(page.locator("#banner")).to_be_visible()
    await expect(page.locator("#banner")).to_contain_text("غير متصل: هذه آخر حالة محفوظة")
    await expect(page.locator(f"#g-{group_id} .total dd")).to_have_text(["2", "7", "3", "0"])
    await screenshot(page, "app-offline-ar", tmp_path)

    await context.set_offline(False)
    await page.locator("#refresh").click()
    await expect(page.locator("#banner")).to_be_hidden()


async def test_a_push_shows_a_notification_that_opens_its_group(
    page: Any, context: Any, svc: Running, clock: ManualClock
) -> None:
    group_id = await a_strike(svc, clock)
    await context.grant_permissions(["notifications"], origin=svc.url)
    await pair(page, svc)
    await controlled(page)

    # A full payload, as the Web Push channel sends it.
    await push_to_worker(context, page, svc.url, {
        "group_id": group_id, "seq": 1, "kind": "update", "title": "إدلب · حوادث جديدة: 1",
        "body": "قتلى: 2 · جرحى: 7 · عالقون: 3", "url": f"/app/#group={group_id}",
    })  # fmt: skip
    (note,) = await until(lambda: notifications(page), what="the notification")
    assert note == {"title": "إدلب · حوادث جديدة: 1", "body": "قتلى: 2 · جرحى: 7 · عالقون: 3",
                    "tag": group_id, "dir": "rtl", "url": f"/app/#group={group_id}"}  # fmt: skip

    # A minimal payload: the worker fetches the update's text with the phone's key.
    await page.evaluate("""async () => (await (await navigator.serviceWorker.ready)
        .getNotifications()).forEach(n => n.close())""")
    await until(lambda: notifications(page), lambda ns: ns == [], what="closed")
    await push_to_worker(
        context, page, svc.url, {"group_id": group_id, "seq": 1, "kind": "update", "minimal": True}
    )
    (note,) = await until(lambda: notifications(page), what="the minimal push's notification")
    status, update = await svc.get(f"/v1/groups/{group_id}/updates/1?locale=ar",
                                   key="phone-idleb-lead-1")  # fmt: skip
    assert status == 200
    assert note == {"title": update["title"], "body": update["body"], "tag": group_id,
                    "dir": "rtl", "url": f"/app/#group={group_id}"}  # fmt: skip
    assert note["title"] == "\u202bإدلب · حوادث جديدة: 1\u202c"
    assert note["body"].startswith("\u202bقتلى: 2 · جرحى: 7 · عالقون: 3"), note["body"]

    # Tapping it opens its link (the worker's notificationclick): the group, marked.
    await page.goto(svc.url + note["url"])
    await expect(page.locator(f"#g-{group_id}")).to_have_class(re.compile(r"\bfocus\b"))
