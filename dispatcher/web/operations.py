"""What operators look at: each alert group's deliveries, and metrics for Prometheus.

`GET /v1/groups/{id}/deliveries` lists every notification of a group with what became of
it (sent with FCM's message name, failed and why, superseded, expired, retried n times);
tokens appear only truncated. `GET /metrics` is the Prometheus text format. Both need a
key with the `read` scope: delivery failures say who could not be reached.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dispatcher.intake import is_ident
from dispatcher.notify.base import redact_token
from dispatcher.store.repo import DeliveryRow
from dispatcher.web.auth import requires
from dispatcher.web.openapi import documented
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import GROUPS, METRICS, OUTBOX, RULES, json_response

STATUSES = ("pending", "sent", "failed", "superseded", "expired")


def _delivery_json(d: DeliveryRow) -> dict[str, object]:
    return {
        "id": d.id,
        "seq": d.seq,
        "leader": d.leader_id,
        "device": None
        if d.device_id is None
        else {
            "id": d.device_id,
            "token": redact_token(d.token) if d.token else None,
            "platform": d.platform,
        },
        "channel": d.channel,
        "status": d.status,
        "attempts": d.attempts,
        "retries": max(0, d.attempts - 1),
        "last_error": d.last_error,
        "message_name": d.message_name,
        "created_at": d.created_at.isoformat(),
        "sent_at": d.sent_at.isoformat() if d.sent_at else None,
        "next_attempt_at": d.next_attempt_at.isoformat()
        if d.next_attempt_at and d.status == "pending"
        else None,
        "expires_at": d.expires_at.isoformat() if d.expires_at else None,
    }


@requires("read")
@documented(
    "Every notification of an alert group and what became of it",
    responses={200: "the deliveries", 404: ""},
    tags=["groups"],
)
async def group_deliveries(request: web.Request) -> web.Response:
    group_id = request.match_info["id"]
    group = await request.app[GROUPS].get_group(group_id) if is_ident(group_id) else None
    if group is None:
        raise ProblemError(404, "Not Found", "no alert group with that id")
    rows = await request.app[OUTBOX].deliveries(group_id)
    counts = {status: sum(1 for d in rows if d.status == status) for status in STATUSES}
    return json_response(
        {
            "group": {
                "id": group.id,
                "route": group.route_id,
                "receiver": group.receiver,
                "labels": dict(group.labels),
                "seq": group.seq,
            },
            "counts": counts,
            "deliveries": [_delivery_json(d) for d in rows],
        }
    )


@requires("read")
@documented(
    "Metrics in the Prometheus text format",
    responses={200: ""},
    response_media="text/plain",
    tags=["operations"],
)
async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    counts = await request.app[OUTBOX].notification_counts()
    for status in STATUSES:
        m.outbox.labels(status).set(counts.get(status, 0))
    rules = request.app[RULES]
    m.rules_info.clear()
    m.rules_info.labels(rules.current.version).set(1)
    m.rules_errors.set(len(rules.last_errors))
    return web.Response(
        body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def add_operation_routes(app: web.Application) -> None:
    app.router.add_get("/v1/groups/{id}/deliveries", group_deliveries)
    app.router.add_get("/metrics", metrics)
