"""A webhook receiver on loopback, strict like a real SMS gateway should be: it refuses a
request whose HMAC signature or timestamp is wrong, and records the ones it accepts."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dispatcher.notify.webhook import verify


@dataclass
class WebhookReceiver:
    secret: str
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer first
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/alerts", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/alerts"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get("X-Dispatcher-Timestamp", "")
        signature = request.headers.get("X-Dispatcher-Signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            self.refused.append("stale or missing timestamp")
            return web.Response(status=401)
        if not verify(self.secret, stamp, body, signature):
            self.refused.append("bad signature")
            return web.Response(status=401)
        if self.fail_next:
            return web.Response(status=self.fail_next.pop(0), headers={"Retry-After": "0"})
        self.accepted.append(
            {**json.loads(body), "idempotency_key": request.headers.get("Idempotency-Key")}
        )
        return web.Response(status=202, headers={"X-Request-Id": f"sms-{len(self.accepted)}"})
