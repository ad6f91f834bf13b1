"""A request id on every answer: `X-Request-Id`, taken from the request when it is a sane
token (a proxy's or the client's own, up to 128 characters), else made here.

The id is in the logs of everything done for the request (dispatcher/logs.py) and in every
problem+json body, so that a reporter's complaint, a proxy's log and ours meet on one id.
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from dispatcher.logs import REQUEST_ID
from dispatcher.web.problems import Handler

HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_KEY = web.RequestKey("request_id", str)


def request_id_for(given: str | None) -> str:
    """The client's id when it is a sane token, else a new one."""
    if given is not None and _SANE.fullmatch(given):
        return given
    return uuid.uuid4().hex


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: every answer below it, problems included, carries the id."""
    rid = request_id_for(request.headers.get(HEADER))
    request[_KEY] = rid
    token = REQUEST_ID.set(rid)
    try:
        return await handler(request)
    finally:
        REQUEST_ID.reset(token)


async def add_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the header on every answer, also those aiohttp makes itself."""
    rid = request.get(_KEY)
    if rid is not None:
        response.headers[HEADER] = rid


def install(app: web.Application) -> None:
    app.middlewares.insert(0, request_id_middleware)
    app.on_response_prepare.append(add_header)
