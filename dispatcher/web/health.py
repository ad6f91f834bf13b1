"""The health check: `GET /healthz`, public, 200 while the store answers (with the rules
version in force), 503 when it does not. (Metrics are web/operations.py's.)
"""

from __future__ import annotations

from aiohttp import web

from dispatcher.web.auth import PUBLIC, requires
from dispatcher.web.openapi import documented
from dispatcher.web.services import HEALTH, RULES, json_response


@requires(PUBLIC)
@documented(
    "Health: the store answers and rules are loaded",
    responses={200: "healthy", 503: ""},
    json_statuses=[503],
    tags=["operations"],
)
async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[HEALTH].ping()
    except Exception as exc:
        return json_response(
            {"status": "unavailable", "store": f"error: {type(exc).__name__}"}, 503
        )
    return json_response(
        {"status": "ok", "store": "ok", "rules_version": request.app[RULES].current.version}
    )


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
