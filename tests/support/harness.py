"""A running dispatcher on a real port, built exactly as `dispatcher serve` builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from dispatcher.app import Service, build, make_app
from dispatcher.clock import Clock, system_clock
from dispatcher.settings import ApiKey, Settings
from dispatcher.web.access import ACCESS
from dispatcher.web.auth import hash_key

TESTDATA = Path(__file__).resolve().parents[1] / "testdata"


@dataclass
class Keys:
    """Plain keys for tests, and the config entries that admit them."""

    plain: dict[str, str] = field(default_factory=dict)
    entries: list[ApiKey] = field(default_factory=list)

    def add(self, name: str, *scopes: str, leader: str | None = None) -> str:
        key = f"test-key-{name}"
        self.plain[name] = key
        self.entries.append(
            ApiKey(name=name, sha256=hash_key(key), scopes=list(scopes), leader=leader)
        )
        return key


@dataclass
class Running:
    url: str
    service: Service
    http: aiohttp.ClientSession
    keys: Keys
    app: web.Application | None = None

    async def post(
        self, path: str, body: Any, *, key: str | None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys.plain[key]}"} if key else {}
        headers.update(kwargs.pop("headers", {}))
        async with self.http.post(self.url + path, json=body, headers=headers, **kwargs) as resp:
            ctype = resp.content_type
            payload = await resp.json(content_type=None) if "json" in ctype else await resp.text()
            return resp.status, payload

    async def delete(self, path: str, *, key: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys.plain[key]}"} if key else {}
        async with self.http.delete(self.url + path, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, path: str, *, key: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys.plain[key]}"} if key else {}
        async with self.http.get(self.url + path, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


def fcm_push(emulator: Any, credentials: Path, **more: Any) -> dict[str, Any]:
    """The `push` settings section that points the FCM channel at the emulator."""
    return {"fcm": {"credentials": str(credentials), "endpoint": emulator.base_url}, **more}


def settings_for(
    tmp_path: Path, keys: Keys, *, db_url: str | None = None, **sections: Any
) -> Settings:
    base: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {"url": db_url or f"sqlite+aiosqlite:///{tmp_path / 'dispatcher.db'}"},
        "rules": {"path": str(TESTDATA / "rules-e2e")},
        "scheduler": {"tick": "100ms"},
        "push": {"retry_base": "200ms", "retry_max": "1s"},
        "auth": {"keys": [k.model_dump() for k in keys.entries]},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Settings(**base)


@asynccontextmanager
async def running(
    settings: Settings, keys: Keys, *, clock: Clock = system_clock
) -> AsyncIterator[Running]:
    service = await build(settings, clock=clock)
    app = make_app(service)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    app[ACCESS].public_url = settings.server.base_url(port)
    try:
        async with aiohttp.ClientSession() as http:
            yield Running(f"http://127.0.0.1:{port}", service, http, keys, app)
    finally:
        await runner.cleanup()
        await service.close()
