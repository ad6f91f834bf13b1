"""What a leader's app reads: the open alert groups the key's leader receives.

`GET /v1/me/groups` (the `devices:write` scope of a leader's device key) lists, newest
report first, the open groups whose receiver is the leader's team or the leader, and those
of a team that escalated to the leader's team: each with its latest update in the leader's
language (`?locale=` overrides), its incidents with their merged counts, and who has
acknowledged. The app at /app/ shows it, and keeps the last answer for when it is offline.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher.acks import receivers_for
from dispatcher.counting import COUNT_FIELDS, count
from dispatcher.group import latest_revisions
from dispatcher.intake import FieldError, report_json_casualties
from dispatcher.rules.load import RuleSet
from dispatcher.store.rows import IncidentRow, LeaderGroup
from dispatcher.web.auth import requires
from dispatcher.web.openapi import Param, documented
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import CLOCK, GROUPS, RULES, device_leader, json_response

LOCALES = ("ar", "en")
MAX_INCIDENTS = 50  # per group: a surge holds thousands, a phone on a poor link wants few


def disagreement(summary: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per field, where some source reports more than the figure in force: the figure and
    the highest reported (`highs` in an update's record, when the counting keeps them)."""
    totals = summary.get("totals") or {}
    highs = summary.get("highs") or {}
    return {
        name: {"value": int(totals.get(name, 0)), "high": int(high)}
        for name, high in highs.items()
        if int(high) > int(totals.get(name, 0))
    }


def _incident_json(row: IncidentRow, rules: RuleSet, locale: str) -> dict[str, Any]:
    latest = latest_revisions(r.report for r in row.reports)
    # Counted in the order received, as GET /v1/incidents counts (docs/counting.md).
    received = sorted(latest, key=lambda r: (r.received_at is None, r.received_at))
    merged = count(r for r in received if r.status != "retracted")
    body: dict[str, Any] = {
        "id": row.id,
        "kind": merged.kind or row.kind,
        "region": row.region,
        "region_name": rules.region_name(row.region, locale),
        "occurred_at": row.occurred_at.isoformat(),
        "casualties": report_json_casualties(merged.casualties),
        "confirmed": merged.confirmed,
        "retracted": not merged.live_reports,
        "live_reports": merged.live_reports,
    }
    ranges = {
        name: {"value": f.value, "high": f.high}
        for name, f in zip(COUNT_FIELDS, merged.fields, strict=True)
        if f.high > f.value
    }
    if ranges:
        body["ranges"] = ranges
    return body


def group_json(found: LeaderGroup, rules: RuleSet, locale: str, leader_id: str) -> dict[str, Any]:
    group = found.group
    latest: dict[str, Any] | None = None
    if found.latest is not None:
        seq, created_at, summary = found.latest
        texts = summary.get("texts") or {}
        text = texts.get(locale) or texts.get("en") or {"title": "", "body": ""}
        latest = {
            "seq": seq,
            "kind": summary.get("kind", "update"),
            "created_at": created_at.isoformat(),
            "title": text["title"],
            "body": text["body"],
            "totals": summary.get("totals"),
        }
        ranges = disagreement(summary)
        if ranges:
            latest["ranges"] = ranges
    names = {x.id: x.name for x in rules.leaders.values()}
    return {
        "id": group.id,
        "route": group.route_id,
        "receiver": group.receiver,
        "receiver_name": rules.receiver_name(group.receiver),
        "opened_at": group.created_at.isoformat() if group.created_at else None,
        "last_report_at": group.last_report_at.isoformat() if group.last_report_at else None,
        "seq": group.seq,
        "escalated": group.escalated_at is not None,
        "latest": latest,
        "incidents": [_incident_json(i, rules, locale) for i in found.incidents],
        "incidents_total": found.incidents_total,
        "acks": [
            {
                "leader": a.leader_id,
                "name": names.get(a.leader_id),
                "at": a.at.isoformat(),
                "responding": a.responding,
                "note": a.note,
            }
            for a in found.acks
        ],
        "acked_by_me": any(a.leader_id == leader_id for a in found.acks),
    }


@requires("devices:write")
@documented(
    "The key's leader's open alert groups, as the leaders' app shows them",
    query=[Param("locale", {"type": "string", "enum": ["ar", "en"]})],
    responses={200: "the groups"},
    tags=["devices"],
)
async def my_groups(request: web.Request) -> web.Response:
    leader_id = device_leader(request)
    rules = request.app[RULES].current
    locale = request.query.get("locale") or rules.leaders[leader_id].locale
    if locale not in LOCALES:
        raise ProblemError(
            400,
            "Bad query",
            errors=[FieldError("locale", f"must be one of {', '.join(LOCALES)}")],
        )
    receivers, escalating = receivers_for(rules, leader_id)
    found = await request.app[GROUPS].leader_groups(
        receivers=receivers, escalated_from=escalating, incident_limit=MAX_INCIDENTS
    )
    response = json_response(
        {
            "leader": leader_id,
            "locale": locale,
            "at": request.app[CLOCK]().isoformat(),
            "groups": [group_json(g, rules, locale, leader_id) for g in found],
        }
    )
    # Phones on a poor link: the listing compresses to a fifth (aiohttp moves large bodies
    # off the event loop to compress them).
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression(web.ContentCoding.gzip)
    return response


def add_leader_routes(app: web.Application) -> None:
    app.router.add_get("/v1/me/groups", my_groups)
