"""An operator at the desk over plain HTTP: signs in with a key, keeps the session cookie,
and sends the session's CSRF token on writes as the desk's own script does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@dataclass
class DeskClient:
    url: str
    http: aiohttp.ClientSession
    csrf: str = ""

    async def sign_in(self, key: str) -> int:
        async with self.http.post(
            self.url + "/desk/login", data={"key": key}, allow_redirects=False
        ) as resp:
            status = resp.status
        if status == 303:
            page = await self.page("/desk/")
            found = CSRF_META.search(page[1])
            assert found is not None
            self.csrf = found.group(1)
        return status

    async def page(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.url + path, allow_redirects=False) as resp:
            return resp.status, await resp.text()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(self.url + path, allow_redirects=False) as resp:
            return resp.status, await resp.json(content_type=None)

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        csrf: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = {"X-CSRF-Token": self.csrf if csrf is None else csrf, **(headers or {})}
        async with self.http.request(
            method, self.url + path, json=body, headers=sent, allow_redirects=False
        ) as resp:
            return resp.status, await resp.json(content_type=None)


@asynccontextmanager
async def desk_client(url: str) -> AsyncIterator[DeskClient]:
    # unsafe=True: keep cookies set by an IP address (127.0.0.1), as a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield DeskClient(url, http)
