"""The rules in force over HTTP: their status and history (`GET /v1/rules/status`), and a
reload (`POST /v1/admin/rules/reload`) that keeps the last good rules if the new ones fail.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher.rules.live import LiveRules
from dispatcher.settings import ApiKey
from dispatcher.web.auth import KEY, requires
from dispatcher.web.openapi import documented
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import CLOCK, RULE_SETS, RULES, json_response


def rules_status_json(live: LiveRules) -> dict[str, Any]:
    rules = live.current
    return {
        "version": rules.version,
        "applied_at": live.loaded_at.isoformat(),
        "applied_by": live.how,
        "files": [str(f) for f in rules.files],
        "regions": len(rules.regions),
        "teams": len(rules.teams),
        "warnings": [str(w) for w in rules.warnings],
        "last_attempt_at": live.last_attempt_at.isoformat() if live.last_attempt_at else None,
        "last_errors": list(live.last_errors),
    }


@requires("read")
@documented("The rules in force and the last refused edit", responses={200: ""}, tags=["rules"])
async def rules_status(request: web.Request) -> web.Response:
    """The rules in force, why the last reload was refused if it was, and what was applied."""
    history = await request.app[RULE_SETS].rule_set_history()
    return json_response({**rules_status_json(request.app[RULES]), "history": history})


@requires("admin")
@documented(
    "Load the rules again",
    responses={200: "applied", 422: "refused; the last good rules keep serving"},
    tags=["rules"],
)
async def rules_reload(request: web.Request) -> web.Response:
    live = request.app[RULES]
    key: ApiKey = request[KEY]
    applied = await live.reload(f"API by key '{key.name}'", request.app[CLOCK])
    status = rules_status_json(live)
    if not applied:
        raise ProblemError(
            422,
            "Rules refused",
            f"the edited rules have errors; version {status['version']} keeps serving",
            rule_errors=status["last_errors"],
            serving=status["version"],
        )
    return json_response(status)


def add_rules_routes(app: web.Application) -> None:
    app.router.add_get("/v1/rules/status", rules_status)
    app.router.add_post("/v1/admin/rules/reload", rules_reload)
