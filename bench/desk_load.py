"""The desk on a surge day: its page and the calls it makes with 5,000 incidents today.

Starts `dispatcher serve` (SQLite, the shipped rules with the COD-AB outlines), posts
`--incidents` reports spread over Aleppo and Idleb (each its own incident), signs in to the
desk as an operator does and times what the map page loads: the HTML, the scripts and
styles, the region outlines, and the incidents call (bytes, and the median of `--repeat`
fetches). With Debian's chromium at /usr/bin/chromium it also opens the page in a real
browser and reads how long the map took to draw every marker, and how long from navigation
to a map ready with all of them.

    .venv/bin/python bench/desk_load.py [--incidents 5000] [--repeat 5] [--no-browser]
        [--screenshot PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import service

ROOT = Path(__file__).resolve().parents[1]
WRITER, OPERATOR = "bench-desk-writer", "bench-desk-operator"
CHROMIUM = Path("/usr/bin/chromium")
KINDS = ["airstrike", "shelling", "missile", "barrel_bomb", "explosion", "fire"]


def keys() -> list[dict[str, Any]]:
    def entry(key: str, scopes: list[str]) -> dict[str, Any]:
        return {"name": key, "sha256": hashlib.sha256(key.encode()).hexdigest(),
                "scopes": scopes, "leader": None}  # fmt: skip

    return [entry(WRITER, ["reports:write"]), entry(OPERATOR, ["read"])]


def reports(n: int, now: datetime) -> list[dict[str, Any]]:
    rng = random.Random(18)
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"desk-{i}",
                "source": f"src-{i}",  # a few strikes close in place and time merge
                "kind": rng.choice(KINDS),
                "occurred_at": (now - timedelta(seconds=rng.randint(0, 6 * 3600))).isoformat(),
                "location": {"lat": 35.6 + rng.random() * 1.0, "lon": 36.4 + rng.random() * 1.6},
                "casualties": {
                    "killed": rng.randint(0, 12),
                    "injured": rng.randint(0, 30),
                    "trapped": rng.randint(0, 5),
                },
            }
        )
    return out


async def timed(http: aiohttp.ClientSession, url: str) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    async with http.get(url) as resp:
        body = await resp.read()
        assert resp.status == 200, (url, resp.status, body[:200])
    return (time.perf_counter() - t0) * 1000, len(body), body


async def browser(url: str, key: str, incidents: int, shot: str | None) -> dict[str, float]:
    from playwright.async_api import async_playwright

    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
        page = await (
            await chromium.new_context(viewport={"width": 1366, "height": 768})
        ).new_page()
        await page.goto(url + "/desk/login")
        await page.locator("input[name=key]").fill(key)
        await page.locator("form.login button[type=submit]").click()
        await page.wait_for_function("window.desk && window.desk.ready", timeout=60_000)
        await page.reload()
        t0 = time.perf_counter()
        await page.wait_for_function("window.desk && window.desk.ready", timeout=60_000)
        wall = (time.perf_counter() - t0) * 1000
        figures: dict[str, float] = await page.evaluate(
            """() => ({rendered: window.desk.rendered, render_ms: window.desk.renderMs,
                ready_ms: performance.now()})"""
        )
        # Panning and zooming redraws every marker on the canvas: time a zoom in and out.
        zoom_ms = await page.evaluate(
            """() => new Promise(done => { const m = window.desk.map; const t = performance.now();
                m.once('zoomend', () => {
                  m.once('zoomend', () => requestAnimationFrame(() => done(performance.now() - t)));
                  m.zoomOut(1, {animate: false});
                });
                m.zoomIn(1, {animate: false}); })"""
        )
        if shot:
            await page.screenshot(path=shot)
        await chromium.close()
    assert figures["rendered"] == incidents, figures
    return {**figures, "wall_ms": wall, "zoom_ms": zoom_ms}


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-desk-") as folder:
        tmp = Path(folder)
        env = {
            "DISPATCHER_SERVER__PORT": "0",
            "DISPATCHER_STORAGE__URL": f"sqlite+aiosqlite:///{tmp / 'desk.db'}",
            "DISPATCHER_RULES__PATH": str(ROOT / "rules"),
            "DISPATCHER_AUTH__KEYS": json.dumps(keys()),
            "DISPATCHER_SCHEDULER__TICK": "1h",  # nothing but the desk's calls
        }
        proc, url = service.start(env, tmp / "server.log")
        try:
            now = datetime.now(UTC)
            all_reports = reports(args.incidents, now)
            async with aiohttp.ClientSession() as api:
                t0 = time.perf_counter()
                for i in range(0, len(all_reports), 1000):
                    async with api.post(
                        url + "/v1/reports",
                        json=all_reports[i : i + 1000],
                        headers={"Authorization": f"Bearer {WRITER}"},
                    ) as resp:
                        body = await resp.json()
                        assert resp.status == 200, body
                        assert body["accepted"] == len(all_reports[i : i + 1000]), body
                print(f"posted {args.incidents} reports in {time.perf_counter() - t0:.1f} s")
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(url + "/desk/login", data={"key": OPERATOR}) as resp:
                    page = await resp.text()
                    assert resp.status == 200, resp.status
                print(f"{'what':<34} {'bytes':>9} {'ms (median)':>12}")
                total = 0
                for path in ["/desk/", *re.findall(r'(?:src|href)="(/desk/static/[^"]+)"', page)]:
                    ms, size, _ = await timed(http, url + path)
                    total += size
                    print(f"{path:<34} {size:>9,} {ms:>12.1f}")
                first, size, _ = await timed(http, url + "/desk/api/regions.geojson")
                again = statistics.median(
                    [(await timed(http, url + "/desk/api/regions.geojson"))[0]
                     for _ in range(args.repeat)]
                )  # fmt: skip
                total += size
                print(f"{'regions.geojson (first, cached)':<34} {size:>9,} "
                      f"{first:>6.1f},{again:>5.1f}")  # fmt: skip
                times, size, body = [], 0, b""
                for _ in range(args.repeat):
                    ms, size, body = await timed(http, url + "/desk/api/incidents")
                    times.append(ms)
                total += size
                count = len(json.loads(body)["incidents"])
                print(f"{f'incidents ({count} rows)':<34} {size:>9,} "
                      f"{statistics.median(times):>12.1f}")  # fmt: skip
                async with aiohttp.ClientSession(cookie_jar=jar, auto_decompress=False) as raw:
                    headers = {"Accept-Encoding": "gzip"}
                    async with raw.get(url + "/desk/api/incidents", headers=headers) as resp:
                        wire = len(await resp.read())
                        coding = resp.headers.get("Content-Encoding", "none")
                print(f"{f'incidents on the wire ({coding})':<34} {wire:>9,}")
                print(f"{'the page in all':<34} {total:>9,}")
            has_chromium = await asyncio.to_thread(CHROMIUM.exists)
            if args.browser and has_chromium:
                fig = await browser(url, OPERATOR, count, args.screenshot)
                print(
                    f"chromium: {fig['rendered']:.0f} markers drawn in {fig['render_ms']:.0f} ms; "
                    f"reload to a ready map {fig['wall_ms']:.0f} ms; zoom in and out "
                    f"{fig['zoom_ms']:.0f} ms"
                )
            elif args.browser:
                print("chromium: skipped, no /usr/bin/chromium")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"calibration: {service.calibrate():.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-browser", dest="browser", action="store_false")
    parser.add_argument("--screenshot", default=None)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
