"""The desk's JSON calls and its live feed, under /desk/api/ (session cookie, not Bearer).

Reads need a session of a key with `read` (or `admin`); writes need `admin` and the
session's CSRF token (see sessions.py). The map's incidents are one compact row each; the
region outlines are cached per rules version; the feed is Server-Sent Events replayed from
`Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.feed import FeedHub
from dispatcher.guessing import FailureLimiter
from dispatcher.intake import FieldError
from dispatcher.model import KINDS, Report
from dispatcher.rules.diff import diff, diff_json
from dispatcher.rules.load import RuleSet, load_rules
from dispatcher.settings import ApiKey
from dispatcher.silence import Silence
from dispatcher.store.rows import OpenGroup
from dispatcher.targets import reaches_team
from dispatcher.web.auth import KEY, KeyRing, requires
from dispatcher.web.desk import views
from dispatcher.web.desk.sessions import Sessions
from dispatcher.web.desk.views import MapIncident
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import (
    CLOCK,
    GROUPS,
    REPORTS,
    RULE_SETS,
    RULES,
    SILENCES,
    json_response,
    read_body,
)
from dispatcher.web.silences import Names, SilenceIn, check_silence, silence_json

HEARTBEAT = 15.0  # seconds between comments on an idle feed (proxies close silent streams)
DIFF_WINDOW = timedelta(days=1)
DIFF_MAX_REPORTS = 50_000
# Failed sign-ins from one address (an IPv6 client's /64) before it must wait, and how long
# each failure counts. No overall cap: anyone could then lock every operator out of the
# desk in a crisis, and keys made by the service (256 random bits) cannot be guessed anyway.
SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW = timedelta(minutes=10)


def sign_in_limiter() -> FailureLimiter:
    return FailureLimiter(per_address=SIGN_IN_FAILURES, overall=None, window=SIGN_IN_WINDOW)


@dataclass
class Desk:
    """The desk's state on the app: sessions, failed sign-ins, the feed, cached outlines,
    and the time zone its "today" starts in (`alerts.timezone`)."""

    keys: KeyRing
    sessions: Sessions
    hub: FeedHub
    tz: tzinfo = UTC
    heartbeat: float = HEARTBEAT
    sign_ins: FailureLimiter = field(default_factory=sign_in_limiter)
    outlines: dict[str, bytes] = field(default_factory=dict)  # rules version -> GeoJSON


DESK = web.AppKey("desk", Desk)


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


def _wire(report: Report) -> dict[str, Any]:
    """A stored report as its reporter sent it, for replaying through other rules."""
    c = report.casualties
    out: dict[str, Any] = {
        "id": report.id,
        "source": report.source,
        "kind": report.kind,
        "occurred_at": report.occurred_at.isoformat(),
        "status": report.status,
        "revision": report.revision,
        "casualties": {
            "killed": c.killed, "injured": c.injured, "trapped": c.trapped, "rescued": c.rescued
        },
    }  # fmt: skip
    if report.location is not None:
        out["location"] = {"lat": report.location.lat, "lon": report.location.lon}
    if report.given_region is not None:
        out["region"] = report.given_region
    return out


def _load_snapshot(files: dict[str, str]) -> RuleSet:
    with tempfile.TemporaryDirectory(prefix="dispatcher-rules-") as folder:
        root = Path(folder)
        for name, content in files.items():
            path = (root / name).resolve()
            if not path.is_relative_to(root.resolve()):
                raise ValueError(f"a kept rule file lies outside the folder: {name}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        return load_rules(root)


async def rules_diff(request: web.Request, old: str, new: str) -> dict[str, Any]:
    """Who gains and who loses alerts between two applied versions, replaying the last
    day's reports (as `dispatcher rules diff --reports`); `missing` names a version whose
    files were not kept."""
    report_store, rule_set_store = request.app[REPORTS], request.app[RULE_SETS]
    kept = {v: await rule_set_store.rule_set_files(v) for v in (old, new)}
    missing = [v for v, files in kept.items() if files is None]
    if missing:
        return {"missing": missing}
    rule_sets = {}
    for v, files in kept.items():
        assert files is not None
        rule_sets[v] = await asyncio.to_thread(_load_snapshot, files)
    now = request.app[CLOCK]()
    reports = await report_store.reports_received_since(now - DIFF_WINDOW, DIFF_MAX_REPORTS)
    result = await asyncio.to_thread(
        diff,
        rule_sets[old],
        rule_sets[new],
        ((i + 1, _wire(r)) for i, r in enumerate(reports)),
        now,
    )
    return {**diff_json(result), "window_hours": int(DIFF_WINDOW.total_seconds() // 3600)}


@requires("read")
async def rules_diff_json(request: web.Request) -> web.Response:
    old, new = request.query.get("old", ""), request.query.get("new", "")
    if not old or not new:
        raise ProblemError(
            400, "Bad query", errors=[FieldError("old", "give old= and new= versions")]
        )
    result = await rules_diff(request, old, new)
    if "missing" in result:
        raise ProblemError(
            404, "Not Found", f"the files of version {', '.join(result['missing'])} were not kept"
        )
    return json_response(result)
