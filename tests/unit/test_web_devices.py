"""The devices handlers on their own services: no pipeline and no database, the in-memory
devices room on the app's DEVICES key, a real server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dispatcher.clock import Clock
from dispatcher.rules.live import LiveRules
from dispatcher.rules.load import load_rules
from dispatcher.settings import ApiKey
from dispatcher.testing.clock import ManualClock
from dispatcher.testing.memory import MemoryAdmin
from dispatcher.web.auth import KeyRing, auth_middleware, hash_key
from dispatcher.web.devices import add_device_routes
from dispatcher.web.problems import problem_middleware
from dispatcher.web.services import CHANNELS, CLOCK, DEVICES, RULES

RULES_DIR = Path(__file__).parents[1] / "testdata" / "rules-e2e"
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
PHONE_KEY = "dk_phone-of-harim-lead-1-for-tests"
ADMIN_KEY = "dk_an-admin-key-bound-to-no-leader"
OLD = "old-token-" + "a" * 30
NEW = "new-token-" + "b" * 30


class Served:
    def __init__(self, url: str, http: aiohttp.ClientSession, devices: MemoryAdmin) -> None:
        self.url, self.http, self.devices = url, http, devices

    async def call(self, method: str, body: Any, key: str = PHONE_KEY) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"}
        async with self.http.request(
            method, self.url + "/v1/devices", json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json(content_type=None) if resp.status != 204 else None


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    keys = [
        ApiKey(name="phone", sha256=hash_key(PHONE_KEY), scopes=["devices:write"],
               leader="harim-lead-1"),
        ApiKey(name="admin", sha256=hash_key(ADMIN_KEY), scopes=["admin", "devices:write"]),
    ]  # fmt: skip
    app = web.Application(middlewares=[problem_middleware, auth_middleware(KeyRing(keys))])
    devices = MemoryAdmin()
    app[DEVICES] = devices
    app[CHANNELS] = {}  # no Web Push channel here
    app[RULES] = LiveRules(load_rules(RULES_DIR), RULES_DIR, loaded_at=T0)
    clock: Clock = ManualClock(T0)
    app[CLOCK] = clock
    add_device_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        yield Served(f"http://127.0.0.1:{port}", http, devices)
    await runner.cleanup()


async def test_a_refreshed_token_replaces_the_old_one(served: Served) -> None:
    status, body = await served.call("POST", {"token": OLD, "platform": "android"})
    assert status == 201
    assert body["device"]["leader"] == "harim-lead-1"
    status, body = await served.call(
        "POST", {"token": NEW, "platform": "android", "locale": "en", "replaces": OLD}
    )
    assert status == 201
    assert [d.token for d in await served.devices.active_devices(["harim-lead-1"])] == [NEW]
    # The same registration again: 200, and the token it named is not retired twice.
    status, _ = await served.call("POST", {"token": NEW, "platform": "android", "replaces": NEW})
    assert status == 200
    assert [d.token for d in await served.devices.active_devices(["harim-lead-1"])] == [NEW]


async def test_handlers_answer_problems_they_raise(served: Served) -> None:
    status, body = await served.call("POST", {"token": OLD, "platform": "android"}, ADMIN_KEY)
    assert status == 403
    assert body["detail"] == "the key 'admin' is not bound to a leader"
    status, body = await served.call("POST", {"token": "short", "platform": "pager"})
    assert status == 422
    assert body["title"] == "Invalid device"
    assert sorted(e["field"] for e in body["errors"]) == ["platform", "token"]
    status, body = await served.call("DELETE", {"token": OLD})
    assert status == 404
    assert body["detail"] == "no device with that token for this leader"
