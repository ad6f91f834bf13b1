"""A report reaches the leaders' app in Chromium over Web Push, end to end.

The real service (real port, real SQLite file) sends through its Web Push channel to the
Web Push emulator, which checks the VAPID signature and decrypts each push as a browser's
push service would hand it over; the decrypted message is delivered to the app's service
worker in Chromium (DevTools: ServiceWorker.deliverPushMessage), which shows it. Chromium
cannot subscribe to a real push service here (that needs Google's servers), so the
subscription comes from the emulator, registered with the key the app was paired with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dispatcher.testing.webpush_emulator import WebPushEmulator
from tests.support.browser import (
    STORED_KEY,
    controlled,
    needs_chromium,
    notifications,
    pair,
    push_to_worker,
)
from tests.support.harness import Keys, Running, running, settings_for
from tests.support.waiting import until

expect = pytest.importorskip("playwright.async_api").expect

pytestmark = [needs_chromium, pytest.mark.asyncio(loop_scope="module")]

HARIM = {"lat": 36.12, "lon": 36.52}  # in SY0703 Harim, in SY07 Idleb


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("observatory", "reports:write")
    k.add("desk", "admin")
    return k


@pytest_asyncio.fixture(loop_scope="module")
async def web() -> AsyncIterator[WebPushEmulator]:
    async with WebPushEmulator() as emu:
        yield emu


@pytest_asyncio.fixture(loop_scope="module")
async def svc(tmp_path: Path, keys: Keys, web: WebPushEmulator) -> AsyncIterator[Running]:
    settings = settings_for(tmp_path, keys, push={"webpush": {"allowed_origins": [web.origin]}})
    async with running(settings, keys) as s:
        yield s


async def test_a_report_arrives_as_a_notification_in_the_leaders_language(
    page: Any, context: Any, svc: Running, web: WebPushEmulator
) -> None:
    await context.grant_permissions(["notifications"], origin=svc.url)
    await pair(page, svc)
    await controlled(page)

    # The app's button asks the browser to subscribe; headless Chromium has no push
    # service and says so, and the app tells the leader rather than failing silently.
    await page.locator("#notify").click()
    await expect(page.locator("#toast")).to_contain_text("تعذّر تفعيل التنبيهات")
    await expect(page.locator("#notify")).to_have_text("تفعيل التنبيهات")

    # The same steps with the emulator as the push service: the VAPID key the app fetches,
    # a subscription bound to it, registered with the phone's own key.
    key = await page.evaluate(STORED_KEY)
    async with svc.http.get(svc.url + "/v1/webpush/vapid") as r:
        vapid = (await r.json())["public_key"]
    subscription = web.subscribe(application_server_key=vapid)
    async with svc.http.post(
        svc.url + "/v1/devices",
        json={"platform": "web", "locale": "ar", "subscription": subscription},
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        assert r.status == 201, await r.text()

    status, body = await svc.post(
        "/v1/reports",
        {"id": "w1", "source": "observatory", "kind": "airstrike",
         "occurred_at": (datetime.now(UTC) - timedelta(minutes=3)).isoformat(),
         "location": HARIM, "casualties": {"killed": 2, "injured": 5}},
        key="observatory",
    )  # fmt: skip
    assert status == 202, body
    idleb_group = body["groups"][1]
    (push,) = await web.wait_for(1, within=15)
    assert push.endpoint == subscription["endpoint"]
    assert push.payload is not None

    await push_to_worker(context, page, svc.url, push.plaintext.decode())
    (note,) = await until(lambda: notifications(page), what="the notification")
    assert note == {
        "title": "\u202bإدلب · حوادث جديدة: 1\u202c",
        "body": push.payload["body"],
        "tag": idleb_group,
        "dir": "rtl",
        "url": f"/app/#group={idleb_group}",
    }
    assert note["body"].splitlines()[0] == "\u202bقتلى: 2 · جرحى: 5 · عالقون: 0\u202c"
    # The app, told by its worker, shows the group without being asked.
    await expect(page.locator(f"#g-{idleb_group} .total dd")).to_have_text(["2", "5", "0", "0"])
