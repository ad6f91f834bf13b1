"""A request id on every answer: `X-Request-Id`, taken from the request when it is a sane
token (a proxy's or the client's own, up to 128 characters), else made here.

The id is in the logs of everything done for the request (dispatcher/logs.py) and in every
problem+json body, so that a reporter's complaint, a proxy's log and ours meet on one id.
An id made here is 32 hex digits: a random part drawn once per process and a counter (a
fresh uuid4 per request asked the kernel for random bytes every time, 1% of a report's CPU).
"""

from __future__ import annotations

import itertools
import re
import secrets

from aiohttp import web

from dispatcher.logs import REQUEST_ID
from dispatcher.web.problems import Handler

HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_KEY = web.RequestKey("request_id", str)
# Two runs (instances, restarts) share the random part with odds of one in 2**64.
_RUN = secrets.token_hex(8)
_NEXT = itertools.count(1)


def request_id_for(given: str | None) -> str:
    """The client's id when it is a sane token, else a new one."""
    if given is not None and _SANE.fullmatch(given):
        return given
    return f"{_RUN}{next(_NEXT) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


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
