"""A real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright, for the app's tests.

Playwright's own browser downloads are never used: the tests launch the system's Chromium
with flags that keep it off Google's hosts, and skip, saying why, where it is not installed.
`DISPATCHER_SCREENSHOTS=docs/screenshots` keeps the screenshots the tests take there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import until

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # else Chromium calls Google's hosts at start
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 360, "height": 740}  # a cheap Android phone's viewport, in CSS pixels

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium); "
    ".ci/run installs it",
)


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a screenshot goes: DISPATCHER_SCREENSHOTS if set (docs/screenshots), else tmp."""
    folder = Path(os.environ.get("DISPATCHER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


async def screenshot(page: Any, name: str, tmp_path: Path, *, whole: bool = False) -> None:
    """The phone's screen; `whole`: the whole page, as a phone this tall would show it
    (Playwright's full-page capture leaves fixed bars in the middle)."""
    size = page.viewport_size
    if whole:
        await page.evaluate("window.scrollTo(0, 0)")
        height = await page.evaluate("document.documentElement.scrollHeight")
        await page.set_viewport_size(
            {"width": size["width"], "height": max(height, size["height"])}
        )
    await page.screenshot(path=screenshot_path(name, tmp_path))
    if whole:
        await page.set_viewport_size(size)


async def controlled(page: Any) -> None:
    """Wait until the app's service worker controls the page. (Not `wait_for_function`:
    its polling evaluates strings, which the app's Content-Security-Policy forbids.)"""
    await page.evaluate(
        """navigator.serviceWorker.controller ? true : new Promise(done =>
        navigator.serviceWorker.addEventListener('controllerchange', () => done(true),
                                                 {once: true}))"""
    )


# The device key the app keeps in IndexedDB (which its service worker reads too).
STORED_KEY = """() => new Promise(done => indexedDB.open('dispatcher', 1).onsuccess = e =>
    e.target.result.transaction('kv').objectStore('kv').get('key').onsuccess = r =>
        done(r.target.result ?? null))"""


async def a_code(svc: Any, leader: str = "idleb-lead-1") -> dict[str, Any]:
    """A pairing code for a leader, as the desk makes one (its link is in the QR code).
    The service's keys need one named "desk" with the admin scope."""
    status, body = await svc.post(f"/v1/leaders/{leader}/pairings", {}, key="desk")
    assert status == 201, body
    made: dict[str, Any] = body
    return made


async def pair(page: Any, svc: Any, who: str = "Abu Khaled · Idleb Center") -> None:
    """Open the QR code's link and pair, as a leader does."""
    from playwright.async_api import expect

    pairing = await a_code(svc)
    await page.goto(pairing["url"])
    await page.locator("#pair-button").click()
    await expect(page.locator("#who")).to_have_text(who)


async def push_to_worker(context: Any, page: Any, origin: str, payload: Any) -> None:
    """Deliver a push message to the app's service worker, as the browser does with what a
    push service brought (Chromium's DevTools protocol: ServiceWorker.deliverPushMessage).
    `payload`: the decrypted JSON, as a dict, or its text."""
    cdp = await context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda e: registrations.extend(e["registrations"]))  # fmt: skip
    await cdp.send("ServiceWorker.enable")
    await until(lambda: registrations, what="the service worker's registration")
    (registration,) = [r for r in registrations if r["scopeURL"] == f"{origin}/app/"]
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin, "registrationId": registration["registrationId"], "data": data},
    )
    await cdp.detach()


async def notifications(page: Any) -> list[dict[str, Any]]:
    """The notifications the app's service worker shows now."""
    shown: list[dict[str, Any]] = await page.evaluate(
        """async () => (await (await navigator.serviceWorker.ready).getNotifications())
        .map(n => ({title: n.title, body: n.body, tag: n.tag, dir: n.dir, url: n.data.url}))"""
    )
    return shown
