"""Requests the store cannot take just now are refused, not failed: 503 (507 for a full
disk) with Retry-After as a problem document, counted in /metrics by reason.

A report is answered 202 only once committed (web/reports.py), so a refused request was never
acknowledged: the client sends it again after Retry-After (if a lost connection hid a
commit, the report comes back as a duplicate, not a second count). What counts as "not
now" is decided in store/errors.py. Like a handler, the middleware raises `ProblemError`
(web/__init__.py), and `problem_middleware`, outside it, answers.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from dispatcher.metrics import Metrics
from dispatcher.store.errors import unavailable
from dispatcher.web.problems import Handler, ProblemError

log = logging.getLogger("dispatcher.web")

TITLES = {503: "Service Unavailable", 507: "Insufficient Storage"}
SAID = {
    # Refused before it was handed to the database.
    "overload": "nothing was stored",
    # A connection lost during a commit leaves its outcome unknown to us; a report sent
    # again is then answered as a duplicate, never counted twice.
    "store": "it was not stored, or not known to be (a stored report sent again is a "
    "duplicate, not a second count)",
}


def unavailable_middleware(metrics: Metrics) -> Any:
    """A middleware that turns the store's "not now" into 503/507 with Retry-After; an HTTP
    answer raised (`ProblemError`, a redirect) passes as it is, and any other failure on to
    `problem_middleware` (a bug: logged, 500)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise  # an answer already (a refused key, a bad body, a redirect): not the store's
        except Exception as exc:
            answer = unavailable(exc)
            if answer is None:
                raise  # a bug: problem_middleware logs it and answers 500
            kind = "overload" if answer.reason.startswith("overloaded") else "store"
            metrics.refusals.labels(kind).inc()
            log.warning("%s %s refused (%d): %s: %s", request.method, request.path,
                        answer.status, answer.reason, exc)  # fmt: skip
            raise ProblemError(
                answer.status,
                TITLES[answer.status],
                f"{answer.reason}; {SAID[kind]}: send it again after {answer.retry_after} s",
                headers={"Retry-After": str(answer.retry_after)},
            ) from exc

    return middleware
