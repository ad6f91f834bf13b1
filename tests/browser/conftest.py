"""Chromium for the app's tests: one browser per module, a fresh profile per test.

Each module defines its own `svc` (the running service); `context` waits for it, so the
service is up before the browser profile that uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from tests.support.browser import ARGS, CHROMIUM, PHONE


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Any, svc: Any) -> AsyncIterator[Any]:
    ctx = await browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
        locale="ar", timezone_id="Asia/Damascus", service_workers="allow",
    )  # fmt: skip
    yield ctx
    await ctx.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(context: Any) -> Any:
    return await context.new_page()
