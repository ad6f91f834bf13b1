"""A real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright, for the app's tests.

Playwright's own browser downloads are never used: the tests launch the system's Chromium
with flags that keep it off Google's hosts, and skip, saying why, where it is not installed.
`DISPATCHER_SCREENSHOTS=docs/screenshots` keeps the screenshots the tests take there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

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
