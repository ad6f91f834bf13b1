"""The leaders' app over the wire: bytes of a first load, and of a later open.

Starts `dispatcher serve` (a real process on the shipped config, a fresh SQLite file) and
opens /app/ in Debian's Chromium (/usr/bin/chromium, driven by Playwright) on a phone-sized
screen. Counts every request the page and its service worker make, with what each cost on
the wire (response headers and body as transferred, compressed), until the service worker
controls the page. Then pairs with a device key and opens the app again in a new tab: what
still goes over the network (the API call), and what the service worker's cache answered.

    .venv/bin/python bench/app_load.py
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import service
from playwright.async_api import BrowserContext, Request, async_playwright

from dispatcher.web.auth import hash_key

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Resolves once the service worker controls the page (wait_for_function's polling would
# evaluate a string, which the app's Content-Security-Policy forbids).
CONTROLLED = """navigator.serviceWorker.controller || new Promise(done =>
    navigator.serviceWorker.addEventListener('controllerchange', done, {once: true}))"""
BUDGET = 150 * 1024  # the limit for a first load, compressed
KEY = "dk_bench_app_load_device_key_0000000000"
REPORTER = "dk_bench_app_load_reporter_key_000000000"
STRIKES = 20  # in Idleb district, for the paired leader's list


@dataclass
class Tally:
    rows: list[tuple[str, str, int, int, bool]] = field(default_factory=list)

    async def add(self, request: Request) -> None:
        response = await request.response()
        if response is None:
            return
        sizes = await request.sizes()
        wire = sizes["responseHeadersSize"] + max(sizes["responseBodySize"], 0)
        cached = response.from_service_worker
        who = "worker" if request.service_worker is not None else "page"
        self.rows.append((request.url.split("/", 3)[-1], who, wire, 0 if cached else wire, cached))

    def network_bytes(self) -> int:
        return sum(r[3] for r in self.rows)

    def show(self, title: str) -> None:
        print(f"\n{title}")
        for path, who, wire, _, cached in self.rows:
            where = "service worker cache" if cached else f"{wire:7,d} B over the network"
            print(f"  /{path:48.48s} {who:6s} {where}")
        total = self.network_bytes()
        print(f"  total over the network: {total:,d} B ({total / 1024:.1f} KB)")


class Watch:
    """Every finished request of a browser context, into the tally of the moment."""

    def __init__(self, context: BrowserContext) -> None:
        self.tally = Tally()
        self.pending: list[asyncio.Task[None]] = []
        context.on("requestfinished", self._finished)

    def _finished(self, request: Request) -> None:
        self.pending.append(asyncio.get_running_loop().create_task(self.tally.add(request)))

    async def done(self) -> Tally:
        await asyncio.gather(*self.pending)
        self.pending.clear()
        tally, self.tally = self.tally, Tally()
        return tally


async def fetch_each(url: str, paths: list[str]) -> tuple[int, int]:
    """(bytes without compression, bytes with gzip) of these paths, headers included."""
    totals = []
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for encoding in ("identity", "gzip"):
            total = 0
            for path in paths:
                async with http.get(url + path, headers={"Accept-Encoding": encoding}) as r:
                    body = await r.read()
                    head = sum(len(k) + len(v) + 4 for k, v in r.raw_headers) + 17
                    total += head + len(body)
            totals.append(total)
    return totals[0], totals[1]


async def strikes(url: str) -> None:
    """STRIKES reports a kilometre apart in Idleb district: one open group for the leader."""
    now = datetime.now(UTC)
    batch = [
        {"id": f"bench-{n}", "source": "observatory", "kind": "airstrike",
         "occurred_at": (now - timedelta(minutes=n)).isoformat(),
         "location": {"lat": 35.90 + n * 0.01, "lon": 36.63},
         "casualties": {"killed": n % 4, "injured": n % 9, "trapped": n % 3}}
        for n in range(STRIKES)
    ]  # fmt: skip
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url + "/v1/reports", json=batch, headers={"Authorization": f"Bearer {REPORTER}"}
        ) as r,
    ):
        assert r.status == 200, await r.text()


async def my_groups(url: str) -> str:
    """What the paired leader's listing holds, and its size with and without gzip."""
    sizes = []
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for encoding in ("identity", "gzip"):
            headers = {"Authorization": f"Bearer {KEY}", "Accept-Encoding": encoding}
            async with http.get(url + "/v1/me/groups", headers=headers) as r:
                body = await r.read()
                sizes.append(len(body))
                if encoding == "identity":
                    groups = json.loads(body)["groups"]
    held = ", ".join(f"{len(g['incidents'])} incidents" for g in groups)
    return f"{len(groups)} groups ({held}): {sizes[1]:,d} B gzipped, {sizes[0]:,d} B without"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        entries = [
            {"name": "bench-phone", "sha256": hash_key(KEY), "scopes": ["devices:write"],
             "leader": "idleb-center-lead"},
            {"name": "bench-reporter", "sha256": hash_key(REPORTER), "scopes": ["reports:write"]},
        ]  # fmt: skip
        env = {
            "DISPATCHER_SERVER__PORT": "0",
            "DISPATCHER_STORAGE__URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "DISPATCHER_AUTH__KEYS": json.dumps(entries),
        }
        proc, url = service.start(env, Path(tmp) / "service.log")
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                context = await browser.new_context(
                    viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
                )
                watch = Watch(context)
                page = await context.new_page()
                await page.goto(url + "/app/", wait_until="networkidle")
                await page.evaluate(CONTROLLED)
                await page.wait_for_load_state("networkidle")
                first = await watch.done()
                first.show("First load (the pairing screen; the service worker installs the shell)")

                await page.locator("details.key summary").click()
                await page.locator("#key").fill(KEY)
                await page.locator("#key-form button").click()
                await page.locator("#updated").wait_for()
                await page.close()
                await watch.done()
                await strikes(url)

                again = await context.new_page()
                await again.goto(url + "/app/", wait_until="networkidle")
                await again.locator("#updated").wait_for()
                later = await watch.done()
                later.show(
                    f"A later open, paired, one alert group of {STRIKES} incidents (the shell "
                    "from the service worker, the API live)"
                )
                await browser.close()
            # A cross-check that needs no browser: each file the page and the worker fetch,
            # once, as a client asking for gzip gets it (status line and headers counted).
            shell = ["/app/", "/app/sw.js", "/app/manifest.webmanifest", "/app/icons/icon-192.png",
                     "/app/icons/badge-96.png", "/app/icons/apple-touch-icon.png"]  # fmt: skip
            shell += sorted({"/" + r[0] for r in first.rows if "?v=" in r[0]})
            plain, packed = await fetch_each(url, shell)
            print(f"\nEach file once over HTTP: {packed:,d} B with gzip, {plain:,d} B without")
            listing = await my_groups(url)
            print(f"GET /v1/me/groups: {listing}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        total = first.network_bytes()
        verdict = "within" if total <= BUDGET else "OVER"
        print(f"\nfirst load {total / 1024:.1f} KB: {verdict} the 150 KB budget")


if __name__ == "__main__":
    asyncio.run(main())
