"""The store's "not now" becomes 503 with Retry-After, and an answer a handler raised on
purpose passes as it is, even when raised while the store was failing: a real server on
loopback with only the two middlewares."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from dispatcher.metrics import Metrics
from dispatcher.web.problems import ProblemError, problem_middleware
from dispatcher.web.unavailable import unavailable_middleware


async def store_down(_request: web.Request) -> web.Response:
    raise ConnectionRefusedError(111, "connection refused")


async def conflict_while_store_down(_request: web.Request) -> web.Response:
    try:
        raise ConnectionRefusedError(111, "connection refused")
    except ConnectionRefusedError:
        raise ProblemError(409, "Conflict", "decided by the handler") from None


async def redirect_while_store_down(_request: web.Request) -> web.Response:
    try:
        raise ConnectionRefusedError(111, "connection refused")
    except ConnectionRefusedError as exc:
        raise web.HTTPSeeOther("/elsewhere") from exc


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    app = web.Application(middlewares=[problem_middleware, unavailable_middleware(Metrics())])
    app.router.add_get("/down", store_down)
    app.router.add_get("/conflict", conflict_while_store_down)
    app.router.add_get("/redirect", redirect_while_store_down)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with aiohttp.ClientSession() as http:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", http
    await runner.cleanup()


async def test_an_http_answer_passes_and_only_the_store_failing_is_a_503(
    served: tuple[str, aiohttp.ClientSession],
) -> None:
    url, http = served
    async with http.get(url + "/down") as resp:
        assert (resp.status, resp.headers["Retry-After"]) == (503, "5")
    async with http.get(url + "/conflict") as resp:
        assert resp.status == 409
        assert (await resp.json(content_type=None))["detail"] == "decided by the handler"
    async with http.get(url + "/redirect", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (303, "/elsewhere")
