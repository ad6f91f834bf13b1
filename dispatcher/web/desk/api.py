"""The desk's JSON calls under /desk/api/ (session cookie, not Bearer): the map (its
incidents, an incident, the region outlines, the rule tester), open groups and silences.
The live feed is live.py's, the rules diff diff.py's.

Reads need a session of a key with `read` (or `admin`); writes need `admin` and the
session's CSRF token (see sessions.py). The map's incidents are one compact row each; the
region outlines are cached per rules version.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, time, timedelta, tzinfo
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.intake import FieldError
from dispatcher.model import KINDS
from dispatcher.settings import ApiKey
from dispatcher.silence import Silence
from dispatcher.store.rows import OpenGroup
from dispatcher.targets import reaches_team
from dispatcher.web.auth import KEY, requires
from dispatcher.web.desk import views
from dispatcher.web.desk.state import DESK
from dispatcher.web.desk.views import MapIncident
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import (
    CLOCK,
    GROUPS,
    REPORTS,
    RULES,
    SILENCES,
    json_response,
    read_body,
)
from dispatcher.web.silences import Names, SilenceIn, check_silence, silence_json


def midnight(now: datetime, tz: Any) -> datetime:
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time(0), tzinfo=local.tzinfo)


def since_of(text: str, now: datetime, tz: tzinfo) -> datetime | None:
    """The start of the map's window: `today` (midnight in `tz`), `1h`, `6h`, `24h` or an
    RFC 3339 time with an offset; None for anything else."""
    if text == "today":
        return midnight(now, tz)
    hours = {"1h": 1, "6h": 6, "24h": 24}.get(text)
    if hours is not None:
        return now - timedelta(hours=hours)
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        return None
    return since if since.tzinfo is not None else None


# One short list per incident (the names are sent once): time as POSIX seconds, places to
# about a metre, confirmed as 0 or 1; 5,000 incidents are ~0.4 MB, ~0.1 MB compressed.
COLUMNS = [
    "id", "kind", "t", "region", "lat", "lon", "killed", "injured", "trapped", "rescued",
    "confirmed", "live_reports",
]  # fmt: skip


def _compact(row: MapIncident) -> list[Any]:
    return [
        row.id,
        row.kind,
        int(row.occurred_at.timestamp()),
        row.region,
        None if row.lat is None else round(row.lat, 5),
        None if row.lon is None else round(row.lon, 5),
        row.killed,
        row.injured,
        row.trapped,
        row.rescued,
        int(row.confirmed),
        row.live_reports,
    ]


@requires("read")
async def map_incidents(request: web.Request) -> web.Response:
    """Today's (or `since`'s) incidents for the map: one compact row each with its counts
    in force, newest first, at most views.MAP_CAP (`capped` says so). Filters: region (and
    below), kind, team (incidents the rules in force send to it)."""
    rules = request.app[RULES].current
    now = request.app[CLOCK]()
    errors = []
    since = since_of(request.query.get("since", "today"), now, request.app[DESK].tz)
    if since is None:
        errors.append(FieldError("since", "today, 1h, 6h, 24h or an RFC 3339 time with an offset"))
    region = request.query.get("region") or None
    if region is not None:
        found = rules.resolve_region(region)
        if isinstance(found, str):
            region = found
        else:
            errors.append(FieldError("region", f"unknown or ambiguous region {region!r}"))
    kind = request.query.get("kind") or None
    if kind is not None and kind not in KINDS:
        errors.append(FieldError("kind", f"unknown kind {kind!r}"))
    team = request.query.get("team") or None
    if team is not None and team not in rules.teams:
        errors.append(FieldError("team", f"unknown team {team!r}"))
    if errors or since is None:
        raise ProblemError(400, "Bad query", errors=errors)
    held = await request.app[REPORTS].map_incidents(
        since=since,
        regions=rules.subtree(region) if region else None,
        kind=kind,
        limit=views.MAP_CAP + 1,
    )
    capped = len(held) > views.MAP_CAP
    # Counted off the event loop (docs/performance.md, "The desk on a surge day").
    rows = await asyncio.to_thread(views.map_incidents, held[: views.MAP_CAP])
    if team is not None:
        rows = [row for row in rows if reaches_team(rules, views.as_report(row), team)]
    response = json_response(
        {
            "columns": COLUMNS,
            "incidents": [_compact(row) for row in rows],
            "capped": capped,
            "cap": views.MAP_CAP,
            "since": since.isoformat(),
            "feed_id": request.app[DESK].hub.last_id,
        }
    )
    response.enable_compression()
    return response


@requires("read")
async def incident(request: web.Request) -> web.Response:
    row = await request.app[REPORTS].get_incident(request.match_info["id"])
    if row is None:
        raise ProblemError(404, "Not Found", "no incident with that id")
    return json_response(views.incident_panel(row, request.app[RULES].current))


@requires("read")
async def outlines(request: web.Request) -> web.Response:
    """The region outlines of the rules in force, simplified (cached per version)."""
    rules = request.app[RULES].current
    cache = request.app[DESK].outlines
    body = cache.get(rules.version)
    if body is None:
        geo = await asyncio.to_thread(views.outlines_geojson, rules)
        body = json.dumps(geo, ensure_ascii=False, separators=(",", ":")).encode()
        cache.clear()
        cache[rules.version] = body
    return web.Response(
        body=body,
        content_type="application/geo+json",
        charset="utf-8",
        headers={"Cache-Control": "private, max-age=300", "ETag": f'"{rules.version}"'},
    )


@requires("read")
async def rule_test(request: web.Request) -> web.Response:
    """Where a report here, of this kind and these counts, would go."""
    q = request.query
    data: dict[str, Any] = {"kind": q.get("kind", "airstrike")}
    errors = []
    counts: dict[str, int] = {}
    for name in ("killed", "injured", "trapped"):
        try:
            counts[name] = int(q.get(name) or 0)
        except ValueError:
            errors.append(FieldError(name, "must be a whole number"))
    data["casualties"] = counts
    if q.get("lat") and q.get("lon"):
        try:
            data["location"] = {"lat": float(q["lat"]), "lon": float(q["lon"])}
        except ValueError:
            errors.append(FieldError("location", "lat and lon must be numbers"))
    if q.get("region"):
        data["region"] = q["region"]
    if "location" not in data and "region" not in data and not errors:
        errors.append(FieldError("location", "click the map or name a region"))
    if errors:
        raise ProblemError(400, "Bad query", errors=errors)
    result = views.rule_test(request.app[RULES].current, data, request.app[CLOCK]())
    if "errors" in result:
        raise ProblemError(
            422,
            "Invalid report",
            errors=[FieldError(e["field"], e["message"]) for e in result["errors"]],
        )
    return json_response(result)


async def open_group_rows(request: web.Request) -> list[dict[str, Any]]:
    """Every open group as the desk shows it, with why it is quiet."""
    rules = request.app[RULES].current
    now = request.app[CLOCK]()
    groups = await request.app[GROUPS].open_groups()
    silences = await request.app[SILENCES].current_silences(ending_after=now)
    pushes: dict[str, list[tuple[tuple[tuple[str, str], ...], datetime]]] = {}
    for rule in rules.inhibitions:
        for route_id in rule.source_routes:
            if route_id not in pushes:
                recent = await request.app[GROUPS].recent_pushes([route_id], since=now - rule.for_)
                pushes[route_id] = [(labels, at) for _, labels, at in recent]
    return [
        views.group_row(
            rules,
            og,
            silence=views.held_by_silence(rules, og, silences, now),
            inhibition=views.inhibited_by(rules, og, pushes, now),
            now=now,
        )
        for og in groups
    ]


@requires("read")
async def groups(request: web.Request) -> web.Response:
    return json_response({"groups": await open_group_rows(request)})


class DeskSilenceIn(BaseModel):
    """A silence from the desk: its author is the signed-in key's name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    matchers: dict[str, Names]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    duration: str | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500)]


async def _desk_silence(request: web.Request) -> tuple[Silence, list[OpenGroup]]:
    """The silence a desk form gives, checked, and the open groups it would hold."""
    body = await read_body(request, DeskSilenceIn, what="silence")
    key: ApiKey = request[KEY]
    try:
        given = SilenceIn.model_validate(
            {**body.model_dump(exclude_none=True), "author": key.name[:100]}
        )
    except ValueError as exc:
        raise ProblemError(422, "Invalid silence", str(exc)) from None
    now = request.app[CLOCK]()
    silence, errors = check_silence(given, request.app[RULES].current, now)
    if silence is None:
        raise ProblemError(422, "Invalid silence", "nothing was stored", errors=errors)
    held = views.silence_would_hold(
        request.app[RULES].current, silence, await request.app[GROUPS].open_groups()
    )
    return silence, held


@requires("admin")
async def preview_silence(request: web.Request) -> web.Response:
    """The open groups a silence would hold, before it is saved."""
    silence, held = await _desk_silence(request)
    rules = request.app[RULES].current
    now = request.app[CLOCK]()
    return json_response(
        {
            "silence": silence_json(silence, now),
            "groups": [
                views.group_row(rules, og, silence=None, inhibition=None, now=now) for og in held
            ],
        }
    )


@requires("admin")
async def add_silence(request: web.Request) -> web.Response:
    silence, held = await _desk_silence(request)
    key: ApiKey = request[KEY]
    await request.app[SILENCES].add_silence(silence, key_name=key.name)
    return json_response(
        {**silence_json(silence, request.app[CLOCK]()), "holds": [og.group.id for og in held]},
        status=201,
    )
