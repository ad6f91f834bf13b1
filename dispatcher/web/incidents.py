"""Incidents over HTTP: `GET /v1/incidents`, newest first, each with its figures in force,
the sources and tier behind them, its reports and its region path; paged by a cursor.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from aiohttp import web

from dispatcher.counting import COUNT_FIELDS
from dispatcher.group import count_incident
from dispatcher.intake import FieldError, is_ident, parse_time, report_json, report_json_casualties
from dispatcher.model import KINDS
from dispatcher.web.auth import requires
from dispatcher.web.openapi import Param, documented
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import REPORTS, RULES, json_response

MAX_PAGE = 500


def _cursor(at: datetime, incident_id: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{incident_id}".encode()).decode()


def _parse_cursor(text: str) -> tuple[datetime, str] | None:
    try:
        at, _, iid = base64.urlsafe_b64decode(text.encode()).decode().partition("|")
        parsed = parse_time(at)
    except ValueError:  # binascii.Error and UnicodeDecodeError too
        return None
    return (parsed, iid) if is_ident(iid) else None


@requires("read")
@documented(
    "Incidents, newest first, with merged counts",
    query=[
        Param("region", {"type": "string"}, "a region id, name or alias, and its subregions"),
        Param("kind", {"type": "string", "enum": sorted(KINDS)}),
        Param("since", {"type": "string", "format": "date-time"}, "RFC 3339 with an offset"),
        Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}),
        Param("cursor", {"type": "string"}, "next_cursor of the page before"),
    ],
    responses={200: "a page of incidents"},
    tags=["reports"],
)
async def list_incidents(request: web.Request) -> web.Response:
    """Incidents with their merged counts, their reports and region path, newest first."""
    rules = request.app[RULES].current
    q = request.query
    errors = []
    region = q.get("region")
    if region is not None:
        found = rules.resolve_region(region)
        if isinstance(found, str):
            region = found
        else:
            errors.append(FieldError("region", f"unknown or ambiguous region {region!r}"))
    kind = q.get("kind")
    if kind is not None and kind not in KINDS:
        errors.append(FieldError("kind", f"unknown kind {kind!r}"))
    since = None
    if "since" in q:
        try:
            since = parse_time(q["since"])
        except ValueError as exc:
            errors.append(FieldError("since", str(exc)))
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        errors.append(FieldError("limit", f"must be a whole number from 1 to {MAX_PAGE}"))
    before = _parse_cursor(q["cursor"]) if "cursor" in q else None
    if "cursor" in q and before is None:
        errors.append(FieldError("cursor", "not a cursor this API gave"))
    if errors:
        raise ProblemError(400, "Bad query", errors=errors)
    rows = await request.app[REPORTS].list_incidents(
        regions=rules.subtree(region) if region else None,
        kind=kind,
        since=since,
        limit=limit,
        before=before,
    )
    items = []
    for row in rows:
        latest, merged = count_incident(r.report for r in row.reports)
        items.append(
            {
                "id": row.id,
                "kind": merged.kind or row.kind,
                "occurred_at": row.occurred_at.isoformat(),
                "region": {
                    "id": row.region,
                    "path": list(rules.region_path(row.region)),
                    "name": rules.region_name(row.region, "en"),
                    "name_ar": rules.region_name(row.region, "ar"),
                },
                "location": (
                    {"lat": row.location.lat, "lon": row.location.lon} if row.location else None
                ),
                "named": row.named,
                "casualties": report_json_casualties(merged.casualties),
                # Per field: the figure in force, the sources and tier that set it, and the
                # lowest and highest figure any live report gives (docs/counting.md).
                "counts": {
                    name: {
                        "value": f.value,
                        "sources": list(f.sources),
                        "tier": f.tier,
                        "low": f.low,
                        "high": f.high,
                    }
                    for name, f in zip(COUNT_FIELDS, merged.fields, strict=True)
                },
                "confirmed": merged.confirmed,
                "live_reports": merged.live_reports,
                "reports": [report_json(r) for r in latest],
            }
        )
    body: dict[str, Any] = {"incidents": items}
    if len(rows) == limit:
        body["next_cursor"] = _cursor(rows[-1].occurred_at, rows[-1].id)
    return json_response(body)


def add_incident_routes(app: web.Application) -> None:
    app.router.add_get("/v1/incidents", list_incidents)
