"""Errors as `application/problem+json` (RFC 9457), naming every failing field."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from dispatcher.intake import FieldError
from dispatcher.logs import REQUEST_ID

log = logging.getLogger("dispatcher.web")

PROBLEM_TYPE = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = [e.to_json() for e in errors]
    body.update(extra)
    request_id = REQUEST_ID.get()
    if request_id is not None:
        body["request_id"] = request_id
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


class ProblemError(web.HTTPException):
    """Raise it to answer with a problem document: the handler (or a helper it calls) stops
    there, and `problem_middleware` answers. Handlers raise rather than return problems, so
    helpers return plain values and no caller checks what it got."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.status_code = status
        super().__init__(reason=title)
        self.problem = problem(status, title, detail, errors=errors, headers=headers, **extra)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's own HTTP errors and unexpected failures into problem documents."""
    try:
        return await handler(request)
    except ProblemError as exc:
        return exc.problem
    except web.HTTPRequestEntityTooLarge as exc:
        return problem(413, "Request body too large", exc.text)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, None, headers=_allow(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "the error was logged; nothing was stored")


def _allow(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None
