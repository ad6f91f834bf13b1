"""The desk's live feed: `GET /desk/api/feed`, Server-Sent Events of the reports this
instance accepts, replayed from `Last-Event-ID` while the hub's ring still holds them.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from dispatcher.web.auth import requires
from dispatcher.web.desk.state import DESK


@requires("read")
async def feed(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: `report` events (id, data as dispatcher.feed.event_of), from the
    one after `Last-Event-ID` (or `?after=`); a `reload` event when those have left the
    ring; a comment every `heartbeat` seconds while nothing happens."""
    desk = request.app[DESK]
    hub = desk.hub
    given = request.headers.get("Last-Event-ID") or request.query.get("after")
    try:
        after = int(given) if given else hub.last_id
    except ValueError:
        after = -1  # not one of ours: reload
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass events on as they come
        }
    )
    await response.prepare(request)
    try:
        await response.write(b"retry: 2000\n\n")
        while not hub.closed:
            events = hub.since(after) if after >= 0 else None
            if events is None:
                after = hub.last_id
                await response.write(
                    f'id: {after}\nevent: reload\ndata: {{"last_id": {after}}}\n\n'.encode()
                )
                continue
            if events:
                chunk = "".join(
                    f"id: {e.id}\nevent: report\ndata: "
                    f"{json.dumps(e.data, ensure_ascii=False, separators=(',', ':'))}\n\n"
                    for e in events
                )
                after = events[-1].id
                await response.write(chunk.encode())
                continue
            if not await hub.wait(after, desk.heartbeat):
                await response.write(b": heartbeat\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response
