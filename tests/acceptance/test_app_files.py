"""The app's files as a phone's browser gets them: types, gzip, caching, install metadata.

The real service on a free port; no key is needed for the app's own files.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict

from dispatcher.web.pwa import APP_DIR, load_app
from tests.support.harness import Keys, Running, running, settings_for


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[Running]:
    keys = Keys()
    async with running(settings_for(tmp_path, keys), keys) as s:
        yield s


async def fetch(svc: Running, path: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    """The answer as sent: not decompressed, gzip only if asked for."""
    asked = {"Accept-Encoding": "identity", **headers}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(svc.url + path, headers=asked, allow_redirects=False) as r,
    ):
        return r.status, CIMultiDict(r.headers), await r.read()


async def test_the_page_comes_gzipped_with_a_policy_that_admits_nothing_from_elsewhere(
    svc: Running,
) -> None:
    status, headers, body = await fetch(svc, "/app/", **{"Accept-Encoding": "gzip, br"})
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Cache-Control"] == "no-cache"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    page = gzip.decompress(body).decode()
    assert '<html lang="ar" dir="rtl">' in page
    assert '<link rel="manifest" href="/app/manifest.webmanifest">' in page
    assert '<meta name="apple-mobile-web-app-capable" content="yes">' in page
    assert "__APP_VERSION__" not in page
    # Nothing is loaded from another host: every src and href is the service's own.
    assert re.findall(r'(?:src|href)="(?!/app/)', page) == []

    version = re.search(r'app\.js\?v=(\w+)"', page)
    assert version is not None
    status, headers, _ = await fetch(svc, f"/app/app.js?v={version[1]}")
    assert headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Content-Encoding" not in headers, "gzip only to clients that ask for it"

    status, headers, _ = await fetch(svc, "/app")
    assert (status, headers["Location"]) == (308, "/app/")


async def test_an_unchanged_file_is_answered_not_modified(svc: Running) -> None:
    status, headers, _ = await fetch(svc, "/app/app.css")
    assert status == 200
    status, again, body = await fetch(svc, "/app/app.css", **{"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")
    assert again["ETag"] == headers["ETag"]


async def test_the_service_worker_is_served_for_the_app_scope_and_stamped(svc: Running) -> None:
    status, headers, body = await fetch(svc, "/app/sw.js")
    assert status == 200
    assert headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert headers["Service-Worker-Allowed"] == "/app/"
    assert headers["Cache-Control"] == "no-cache", "a new release reaches phones at once"
    version = load_app().version
    assert f"const VERSION = '{version}';" in body.decode()


async def test_the_manifest_installs_an_arabic_app_with_real_icons(svc: Running) -> None:
    status, headers, body = await fetch(svc, "/app/manifest.webmanifest")
    assert status == 200
    assert headers["Content-Type"] == "application/manifest+json; charset=utf-8"
    manifest = json.loads(body)
    assert (manifest["lang"], manifest["dir"]) == ("ar", "rtl")
    assert manifest["name"] == "تنبيهات الإنقاذ · Rescue alerts"
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == (
        "/app/", "/app/", "standalone",
    )  # fmt: skip
    icons = {(i["sizes"], i["purpose"]): i["src"] for i in manifest["icons"]}
    assert set(icons) == {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")}
    for (sizes, _), src in [
        *icons.items(),
        (("180x180", "apple"), "/app/icons/apple-touch-icon.png"),
    ]:
        status, headers, png = await fetch(svc, src)
        assert status == 200, src
        assert headers["Content-Type"] == "image/png"
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert f"{width}x{height}" == sizes, src


async def test_only_the_apps_files_are_served(svc: Running) -> None:
    assert {p.suffix for p in APP_DIR.rglob("*") if p.is_file()} <= {
        ".html", ".js", ".css", ".webmanifest", ".png",
    }  # fmt: skip
    for path in ("/app/../config.yaml", "/app/icons/", "/app/nothing.js", "/app/%2e%2e/README.md"):
        status, _, _ = await fetch(svc, path)
        assert status == 404, path
