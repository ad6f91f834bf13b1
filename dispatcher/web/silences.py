"""Silences over HTTP: operators add, list and expire them (`dispatcher silences` uses this).

`POST /v1/silences` (admin) takes matchers (regions, receivers, routes, kinds; at least one),
a window (`starts_at`, and `ends_at` or `duration`), and who and why (`author`, `reason`);
each matcher is checked against the rules in force, regions by id or name.
`GET /v1/silences` (read) lists the active and pending ones (`?all=1` adds the expired).
`DELETE /v1/silences/{id}` (admin) expires one now.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from dispatcher.intake import FieldError, Text, Time, Wire, is_ident
from dispatcher.model import KINDS
from dispatcher.rules.durations import parse_duration
from dispatcher.rules.load import RuleSet
from dispatcher.settings import ApiKey
from dispatcher.silence import Silence
from dispatcher.web.auth import KEY, requires
from dispatcher.web.openapi import Param, documented
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import CLOCK, RULES, SILENCES, json_response, read_body

MAX_SILENCE = timedelta(days=30)
Names = Annotated[list[Annotated[Text, Field(min_length=1, max_length=200)]], Field(max_length=200)]


class MatchersIn(Wire):
    regions: Names = Field(default_factory=list)
    receivers: Names = Field(default_factory=list)
    routes: Names = Field(default_factory=list)
    kinds: Names = Field(default_factory=list)


class SilenceIn(Wire):
    matchers: MatchersIn
    starts_at: Time | None = None
    ends_at: Time | None = None
    duration: Annotated[str, Field(max_length=100)] | None = None  # 30m, 2h ... not ends_at
    author: Annotated[Text, Field(min_length=1, max_length=100)]
    reason: Annotated[Text, Field(min_length=1, max_length=500)]


def check_silence(
    body: SilenceIn, rules: RuleSet, now: datetime
) -> tuple[Silence | None, list[FieldError]]:
    """The silence a person asked for, checked against the rules in force: the silence, or
    None and every field that is wrong."""
    errors: list[FieldError] = []
    m = body.matchers
    if not (m.regions or m.receivers or m.routes or m.kinds):
        errors.append(
            FieldError("matchers", "give at least one matcher; a silence of everything is refused")
        )
    regions = []
    for i, text in enumerate(m.regions):
        found = rules.resolve_region(text)
        if isinstance(found, str):
            regions.append(found)
        else:
            errors.append(
                FieldError(f"matchers.regions[{i}]", f"unknown or ambiguous region {text!r}")
            )
    for i, receiver in enumerate(m.receivers):
        if receiver not in rules.teams and receiver not in rules.leaders:
            errors.append(
                FieldError(f"matchers.receivers[{i}]", f"unknown team or leader {receiver!r}")
            )
    for i, route in enumerate(m.routes):
        if rules.route(route) is None:
            errors.append(FieldError(f"matchers.routes[{i}]", f"unknown route {route!r}"))
    for i, kind in enumerate(m.kinds):
        if kind not in KINDS:
            errors.append(FieldError(f"matchers.kinds[{i}]", f"unknown kind {kind!r}"))
    starts_at = body.starts_at or now
    ends_at = body.ends_at
    if body.duration is not None:
        try:
            ends_at = starts_at + parse_duration(body.duration)
        except ValueError as exc:
            errors.append(FieldError("duration", str(exc)))
        except OverflowError:
            errors.append(FieldError("duration", "ends after year 9999"))
    if ends_at is None:
        if body.duration is None:
            errors.append(FieldError("ends_at", "give ends_at or duration"))
    elif ends_at <= starts_at:
        errors.append(FieldError("ends_at", "must be after starts_at"))
    elif ends_at - starts_at > MAX_SILENCE:
        errors.append(FieldError("ends_at", "a silence lasts at most 30 days"))
    if errors or ends_at is None:
        return None, errors
    silence = Silence(
        id=uuid.uuid4().hex,
        regions=frozenset(regions),
        receivers=frozenset(m.receivers),
        routes=frozenset(m.routes),
        kinds=frozenset(m.kinds),
        starts_at=starts_at,
        ends_at=ends_at,
        author=body.author,
        reason=body.reason,
        created_at=now,
    )
    return silence, []


def silence_json(s: Silence, now: datetime) -> dict[str, Any]:
    return {
        "id": s.id,
        "state": s.state(now),
        "matchers": {
            "regions": sorted(s.regions),
            "receivers": sorted(s.receivers),
            "routes": sorted(s.routes),
            "kinds": sorted(s.kinds),
        },
        "starts_at": s.starts_at.isoformat(),
        "ends_at": s.ends_at.isoformat(),
        "author": s.author,
        "reason": s.reason,
        "created_at": s.created_at.isoformat(),
    }


@requires("admin")
@documented(
    "Silence alert groups",
    body=SilenceIn,
    responses={201: "the silence"},
    tags=["silences"],
)
async def add_silence(request: web.Request) -> web.Response:
    body = await read_body(request, SilenceIn, what="silence")
    now = request.app[CLOCK]()
    silence, errors = check_silence(body, request.app[RULES].current, now)
    if silence is None:
        raise ProblemError(422, "Invalid silence", "nothing was stored", errors=errors)
    key: ApiKey = request[KEY]
    await request.app[SILENCES].add_silence(silence, key_name=key.name)
    return json_response(silence_json(silence, now), status=201)


@requires("read")
@documented(
    "Active and pending silences",
    query=[Param("all", {"type": "string"}, "any value: expired ones too")],
    responses={200: "the silences"},
    tags=["silences"],
)
async def list_silences(request: web.Request) -> web.Response:
    now = request.app[CLOCK]()
    since = datetime.min.replace(tzinfo=now.tzinfo) if request.query.get("all") else now
    found = await request.app[SILENCES].current_silences(ending_after=since)
    return json_response({"silences": [silence_json(s, now) for s in found]})


@requires("admin")
@documented(
    "Expire a silence now",
    responses={200: "the silence, expired", 404: ""},
    tags=["silences"],
)
async def expire_silence(request: web.Request) -> web.Response:
    now = request.app[CLOCK]()
    silence_id = request.match_info["id"]
    expired = (
        await request.app[SILENCES].expire_silence(silence_id, now=now)
        if is_ident(silence_id)
        else None
    )
    if expired is None:
        raise ProblemError(404, "Not Found", "no silence with that id")
    return json_response(silence_json(expired, now))


def add_silence_routes(app: web.Application) -> None:
    app.router.add_post("/v1/silences", add_silence)
    app.router.add_get("/v1/silences", list_silences)
    app.router.add_delete("/v1/silences/{id}", expire_silence)
