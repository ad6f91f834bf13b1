"""Alert groups as leaders see them: acknowledging one, reading an update, reading a group.

`POST /v1/groups/{id}/ack` takes a leader's device key (the `devices:write` scope, bound to
a leader of the group's receiver), optionally `{"responding": true, "note": "..."}`. The
first acknowledgement stops the group's reminders; every acknowledgement goes to the whole
team in the group's next update, which is due at once.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from dispatcher.acks import acknowledgers
from dispatcher.intake import FieldError, Text, Wire, is_ident
from dispatcher.model import LOCALES
from dispatcher.web.auth import requires
from dispatcher.web.openapi import Param, documented
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import CLOCK, GROUPS, RULES, device_leader, json_response, read_body

MAX_SEQ = 2**31 - 1  # an update number past any group's, and past a database integer


class AckIn(Wire):
    responding: bool = False
    note: Annotated[Text, Field(max_length=500)] | None = None


@requires("devices:write")
@documented(
    "A leader acknowledges an alert group",
    body=AckIn,
    body_required=False,
    responses={
        201: "the group, with who acknowledged",
        404: "no such group",
        409: "the group has closed",
    },
    tags=["groups"],
)
async def acknowledge(request: web.Request) -> web.Response:
    leader = device_leader(request)
    body = AckIn()
    if request.can_read_body:
        body = await read_body(request, AckIn, what="acknowledgement")
    group_id = request.match_info["id"]
    group = await request.app[GROUPS].get_group(group_id) if is_ident(group_id) else None
    if group is None:
        raise ProblemError(404, "Not Found", "no alert group with that id")
    rules = request.app[RULES].current
    if leader not in acknowledgers(rules, group.receiver, escalated=group.escalated_at is not None):
        raise ProblemError(403, "Forbidden", f"leader '{leader}' does not receive this alert group")
    acked = await request.app[GROUPS].acknowledge(
        group.id, leader_id=leader, at=request.app[CLOCK](), responding=body.responding,
        note=body.note,
    )  # fmt: skip
    if acked is None:
        raise ProblemError(409, "Closed", "the alert group has closed; nothing was recorded")
    return await _group_json(request, acked.id, status=201)


@requires("devices:write")
@documented(
    "An update as the leader's phone shows it",
    path={"seq": {"type": "integer", "minimum": 1}},
    query=[Param("locale", {"type": "string", "enum": ["ar", "en"]})],
    responses={200: "the update", 404: "no such update was sent to this leader"},
    tags=["groups"],
)
async def get_update(request: web.Request) -> web.Response:
    """An update as its leader's phone shows it, for apps of `payload: minimal` routes, whose
    pushes carry only a reference. Only a leader the update was sent to may read it."""
    leader = device_leader(request)
    locale = request.query.get("locale")
    if locale is not None and locale not in LOCALES:
        known = " or ".join(LOCALES)
        raise ProblemError(
            400, "Bad query", errors=[FieldError("locale", f"must be {known}, not {locale!r}")]
        )
    try:
        seq = int(request.match_info["seq"])
    except ValueError:
        seq = 0
    if not (1 <= seq <= MAX_SEQ and is_ident(request.match_info["id"])):
        raise ProblemError(404, "Not Found", "no such update")
    found = await request.app[GROUPS].get_update(request.match_info["id"], seq, leader_id=leader)
    if found is None:
        raise ProblemError(404, "Not Found", "no such update was sent to this leader")
    created_at, record = found
    rules = request.app[RULES].current
    locale = locale or rules.leaders[leader].locale
    texts = record.get("texts") or {}
    text = texts.get(locale) or texts.get("en") or {"title": "", "body": ""}
    return json_response(
        {
            "group_id": request.match_info["id"],
            "seq": seq,
            "kind": record.get("kind", "update"),
            "created_at": created_at.isoformat(),
            "locale": locale if locale in texts else "en",
            "title": text["title"],
            "body": text["body"],
            "totals": record.get("totals"),
            "incidents": record.get("incidents"),
            "new": record.get("new", []),
            "revised": record.get("revised", []),
            "retracted": record.get("retracted", []),
            "confirmed": record.get("confirmed", []),
            # A surge push's figures: count, at_least, within_s, incidents, places.
            "surge": record.get("surge"),
        }
    )


@requires("read")
@documented("An alert group", responses={200: "the group", 404: ""}, tags=["groups"])
async def get_group(request: web.Request) -> web.Response:
    return await _group_json(request, request.match_info["id"])


async def _group_json(request: web.Request, group_id: str, status: int = 200) -> web.Response:
    group = await request.app[GROUPS].get_group(group_id) if is_ident(group_id) else None
    if group is None:
        raise ProblemError(404, "Not Found", "no alert group with that id")
    rules = request.app[RULES].current
    acks = await request.app[GROUPS].acks(group_id)
    return json_response(
        {
            "id": group.id,
            "route": group.route_id,
            "receiver": group.receiver,
            "labels": dict(group.labels),
            "seq": group.seq,
            "state": "closed" if group.closed_at else "open",
            "closed_reason": group.closed_reason,
            "handed_over_to": group.handed_over_to,
            "took_over_from": group.took_over_from,
            "last_report_at": group.last_report_at.isoformat() if group.last_report_at else None,
            "acknowledged": [
                {
                    "leader": a.leader_id,
                    "name": rules.leaders[a.leader_id].name
                    if a.leader_id in rules.leaders
                    else None,
                    "at": a.at.isoformat(),
                    "responding": a.responding,
                    "note": a.note,
                }
                for a in acks
            ],
        },
        status=status,
    )


def add_group_routes(app: web.Application) -> None:
    app.router.add_post("/v1/groups/{id}/ack", acknowledge)
    app.router.add_get("/v1/groups/{id}", get_group)
    app.router.add_get("/v1/groups/{id}/updates/{seq}", get_update)
