"""The desk in a real Chromium (Debian's, driven by Playwright): signing in, a report posted
to the API appearing on the map and in the feed, the incident panel, the rule tester's
answer, creating and expiring a silence, a read key seeing no write controls, and the
Arabic layout. The browser is the shared one (tests/browser/conftest.py), in a desktop
profile; `DISPATCHER_SCREENSHOTS=docs/screenshots` keeps the screenshots there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.browser import needs_chromium, screenshot_path
from tests.support.harness import Keys, Running, running, settings_for

DESKTOP = {"width": 1366, "height": 768}  # a desk's laptop

pytestmark = [needs_chromium, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def svc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    keys = Keys()
    keys.add("duty-officer", "admin")
    keys.add("viewer", "read")
    keys.add("observatory", "reports:write")
    tmp = tmp_path_factory.mktemp("desk")
    async with running(settings_for(tmp, keys, scheduler={"tick": "1h"}), keys) as r:
        yield r


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any, svc: Running) -> AsyncIterator[Any]:
    """A desktop browser profile (the shared `context` fixture is a phone's)."""
    ctx = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await ctx.new_page()
    yield page
    await ctx.close()


async def shot(page: Any, name: str, tmp_path: Path) -> None:
    path = await asyncio.to_thread(screenshot_path, name, tmp_path)
    await page.screenshot(path=path)


async def sign_in(page: Any, svc: Running, who: str) -> None:
    from playwright.async_api import expect

    await page.goto(svc.url + "/desk/")
    assert page.url == svc.url + "/desk/login"
    await page.locator("input[name=key]").fill(svc.keys.plain[who])
    await page.locator("form.login button[type=submit]").click()
    await expect(page.locator("#key-name")).to_have_text(who)
    if page.url.startswith(svc.url + "/desk/?") or page.url == svc.url + "/desk/":
        await page.wait_for_function("window.desk && window.desk.ready")


def report(rid: str, lat: float, lon: float, **more: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "source": "observatory",
        "kind": more.pop("kind", "airstrike"),
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=3)).isoformat(),
        "location": {"lat": lat, "lon": lon},
        "casualties": more.pop("casualties", {"killed": 4, "injured": 11, "trapped": 2}),
        **more,
    }


async def click_map(page: Any, lat: float, lon: float) -> None:
    """Click the map where (lat, lon) is drawn, as an operator's mouse would."""
    point = await page.evaluate(
        f"(() => {{ const p = window.desk.map.latLngToContainerPoint([{lat}, {lon}]);"
        " return [p.x, p.y]; })()"
    )
    box = await page.locator("#map").bounding_box()
    await page.mouse.click(box["x"] + point[0], box["y"] + point[1])


async def test_a_report_posted_to_the_api_appears_on_the_map_and_in_the_feed(
    page: Any, svc: Running, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    await svc.post(
        "/v1/reports", report("before", 35.93, 36.63, kind="shelling"), key="observatory"
    )
    await sign_in(page, svc, "duty-officer")
    assert await page.evaluate("window.desk.rendered") == 1
    await expect(page.locator("#feed-state")).to_have_text("live")
    status, answer = await svc.post("/v1/reports", report("obs-1", 36.2, 36.6), key="observatory")
    assert status == 202
    incident = answer["report"]["incident"]
    item = page.locator("#feed li.outcome-new", has_text="Harim")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("airstrike · Harim · killed 4 · injured 11 · trapped 2")
    await page.wait_for_function(f"window.desk.byId.has('{incident}')")
    # A second observer of the same strike: merged, and the marker's counts follow.
    second = report("cd-1", 36.2004, 36.6, source="civil-defence",
                    casualties={"killed": 6, "injured": 3})  # fmt: skip
    await svc.post("/v1/reports", second, key="observatory")
    await expect(page.locator("#feed li.outcome-merged")).to_have_count(1)
    await page.wait_for_function(f"window.desk.byId.get('{incident}').row.killed === 6")
    # Clicking the marker opens the incident: its reports and the counts in force.
    await click_map(page, 36.2, 36.6)
    panel = page.locator("#panel")
    await expect(panel).to_be_visible()
    await expect(page.locator("#incident-title")).to_have_text("airstrike · Harim")
    counts = page.locator("#panel table.counts")
    await expect(counts).to_contain_text("killed6civil-defence · other")
    await expect(counts).to_contain_text("injured11observatory · other")
    await expect(page.locator("#panel .reports > li")).to_have_count(2)
    await shot(page, "desk-map-en", tmp_path)


async def test_clicking_the_map_tests_the_rules_there(
    page: Any, svc: Running, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    await sign_in(page, svc, "viewer")
    await page.locator("#tester-form input[name=killed]").fill("12")
    await click_map(page, 36.28, 36.4)  # Harim, away from any incident
    result = page.locator("#tester-result")
    await expect(page.locator("#test-region")).to_have_text("Harim")
    routes = result.locator("li.route")
    await expect(routes).to_have_count(3)
    await expect(routes.nth(0)).to_contain_text("root › mass-casualty")
    await expect(routes.nth(0).locator(".leader")).to_have_text(["Sara"])
    await expect(routes.nth(1)).to_contain_text("root › harim")
    await expect(routes.nth(1).locator(".receiver")).to_have_text("Harim Center")
    await expect(routes.nth(2).locator(".leader")).to_have_text(["Abu Khaled", "Sara"])
    await shot(page, "desk-tester-en", tmp_path)


async def test_an_admin_previews_creates_and_expires_a_silence(
    page: Any, svc: Running, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    await sign_in(page, svc, "duty-officer")
    await page.goto(svc.url + "/desk/silences")
    await expect(page.locator("#no-silences")).to_be_visible()
    await page.locator("select[name=receivers]").select_option("harim-center")
    await page.locator("input[name=reason]").fill("field exercise in Harim")
    await page.locator("#preview").click()
    held = page.locator("#preview-groups li[data-group]")
    await expect(held).to_have_count(1)
    await expect(held).to_contain_text("Harim Center · harim · region=SY0703")
    await shot(page, "desk-silence-preview-en", tmp_path)
    await page.locator("#save").click()
    row = page.locator("#silences tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("field exercise in Harim")
    await expect(row).to_contain_text("duty-officer")
    await page.goto(svc.url + "/desk/groups")
    quiet = page.locator("#groups tr.quiet")
    await expect(quiet).to_have_count(1)
    await expect(quiet).to_contain_text("held by silence field exercise in Harim")
    await shot(page, "desk-groups-en", tmp_path)
    await page.goto(svc.url + "/desk/silences")
    await page.locator("button.expire").click()
    await expect(page.locator("#no-silences")).to_be_visible()


async def test_a_read_key_sees_no_write_controls(page: Any, svc: Running) -> None:
    from playwright.async_api import expect

    await sign_in(page, svc, "viewer")
    await expect(page.locator("#read-only")).to_be_visible()
    await page.goto(svc.url + "/desk/silences")
    await expect(page.locator("#silence-form")).to_have_count(0)
    await expect(page.locator("button.expire")).to_have_count(0)
    await page.goto(svc.url + "/desk/rules")
    await expect(page.locator("#rules-version")).to_have_text(svc.service.rules.current.version)
    await expect(page.locator("#reload")).to_have_count(0)
    # The API refuses the write anyway, with the page's own token.
    status = await page.evaluate(
        "deskCall('POST', '/desk/api/silences', {matchers: {kinds: ['fire']},"
        " duration: '1h', reason: 'x'}).then(r => r.status)"
    )
    assert status == 403


async def test_the_desk_in_arabic_reads_right_to_left(
    page: Any, svc: Running, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    await sign_in(page, svc, "duty-officer")
    await page.locator("a.lang").click()
    await page.wait_for_function("window.desk && window.desk.ready")
    html = page.locator("html")
    await expect(html).to_have_attribute("dir", "rtl")
    await expect(html).to_have_attribute("lang", "ar")
    await expect(page.locator("nav a").first).to_have_text("الخريطة")
    # Mirrored: the side column is on the left, the map on the right.
    side = await page.locator("aside.side").bounding_box()
    map_box = await page.locator("#map").bounding_box()
    assert side["x"] < map_box["x"]
    await expect(page.locator("#feed li.outcome-new").first).to_contain_text("غارة جوية · حارم")
    await click_map(page, 36.28, 36.4)
    await expect(page.locator("#test-region")).to_have_text("حارم")
    await shot(page, "desk-map-ar", tmp_path)
    await page.goto(svc.url + "/desk/groups")
    await expect(page.locator("h1")).to_contain_text("مجموعات التنبيه المفتوحة")
    await shot(page, "desk-groups-ar", tmp_path)
