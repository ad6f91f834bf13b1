"""The operators' desk: a map, a live feed, groups, silences and rules in the browser.

Served by the dispatcher itself at /desk/: server-rendered pages (aiohttp-jinja2) with a
little JavaScript, Leaflet vendored under static/vendor/ (no map tiles, nothing from the
internet). Operators sign in with an API key (`read` or `admin`) and get a session cookie
(wrong keys are limited per address: `SIGN_IN_FAILURES` in state.py); the desk's JSON calls
live under /desk/api/ and take that cookie, never a Bearer key.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from dispatcher.web.auth import PUBLIC, requires
from dispatcher.web.desk import api, diff, live, pages
from dispatcher.web.desk.state import DESK, Desk
from dispatcher.web.operations import group_deliveries
from dispatcher.web.rules import rules_reload
from dispatcher.web.silences import expire_silence, list_silences

HERE = Path(__file__).parent
STATIC = HERE / "static"


@requires(PUBLIC)
async def static(request: web.Request) -> web.StreamResponse:
    """The desk's own files (its script, styles and vendored Leaflet)."""
    name = request.match_info["path"]
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


@requires(PUBLIC)
async def to_desk(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/desk/")


def add_desk(app: web.Application, desk: Desk) -> None:
    app[DESK] = desk
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    r = app.router
    r.add_get("/desk", to_desk)
    r.add_get("/desk/", pages.desk_page)
    r.add_get("/desk/login", pages.login_form)
    r.add_post("/desk/login", pages.login)
    r.add_post("/desk/logout", pages.logout)
    r.add_get("/desk/lang", pages.language)
    r.add_get("/desk/groups", pages.groups_page)
    r.add_get("/desk/groups/{id}", pages.group_page)
    r.add_get("/desk/silences", pages.silences_page)
    r.add_get("/desk/rules", pages.rules_page)
    r.add_get("/desk/rules/diff", pages.diff_page)
    r.add_get("/desk/static/{path:.+}", static)
    r.add_get("/desk/api/incidents", api.map_incidents)
    r.add_get("/desk/api/incidents/{id}", api.incident)
    r.add_get("/desk/api/regions.geojson", api.outlines)
    r.add_get("/desk/api/test", api.rule_test)
    r.add_get("/desk/api/feed", live.feed)
    r.add_get("/desk/api/groups", api.groups)
    r.add_get("/desk/api/groups/{id}/deliveries", group_deliveries)
    r.add_get("/desk/api/silences", list_silences)
    r.add_post("/desk/api/silences/preview", api.preview_silence)
    r.add_post("/desk/api/silences", api.add_silence)
    r.add_delete("/desk/api/silences/{id}", expire_silence)
    r.add_get("/desk/api/rules/diff", diff.rules_diff_json)
    r.add_post("/desk/api/rules/reload", rules_reload)

    async def closing(_app: web.Application) -> None:
        desk.hub.close()  # open feeds end, so shutdown does not wait for them

    app.on_shutdown.append(closing)


__all__ = ["DESK", "Desk", "add_desk"]
