"""The HTTP API: reports in, devices registered, health out.

Handlers parse and answer; the pipeline does the work. A report is answered only after it
is committed: 202 for a new report or revision, 200 for one already stored, 409 for a
revision older than the stored one.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispatcher.intake import FieldError, field_errors, parse_report, report_json
from dispatcher.notify.base import redact_token
from dispatcher.pipeline import Pipeline
from dispatcher.settings import ApiKey
from dispatcher.web.auth import KEY, PUBLIC, requires
from dispatcher.web.problems import problem

PIPELINE = web.AppKey("pipeline", Pipeline)

JSON_TYPES = ("application/json",)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data, ensure_ascii=False), content_type="application/json"
    )


async def _read_json(request: web.Request) -> Any | web.Response:
    if request.content_type not in JSON_TYPES:
        return problem(
            415,
            "Unsupported Media Type",
            f"send 'Content-Type: application/json', not '{request.content_type}'",
        )
    raw = await request.read()  # raises 413 past the configured size
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return problem(400, "Bad Request", f"the body is not valid JSON: {exc}")


@requires("reports:write")
async def post_report(request: web.Request) -> web.Response:
    pipeline = request.app[PIPELINE]
    data = await _read_json(request)
    if isinstance(data, web.Response):
        return data
    rules = pipeline.rules.current
    parsed = parse_report(data, now=pipeline.clock(), known_region=rules.regions.__contains__)
    if isinstance(parsed, list):
        return problem(422, "Invalid report", "nothing was stored", errors=parsed)
    key: ApiKey = request[KEY]
    accepted = await pipeline.accept(parsed, key_name=key.name)
    result = accepted.result
    stored = result.stored.report
    body = {
        "status": {"created": "accepted", "duplicate": "duplicate", "stale": "stale"}[
            result.outcome
        ],
        "report": report_json(stored),
        "received_at": result.stored.received_at.isoformat(),
        "region": {
            "id": stored.region,
            "path": list(accepted.region_path),
            "name": rules.region_name(stored.region, "en"),
            "name_ar": rules.region_name(stored.region, "ar"),
        },
    }
    if result.outcome == "stale":
        return problem(
            409,
            "Stale revision",
            f"revision {parsed.revision} is older than the stored revision "
            f"{stored.revision}; nothing was changed",
            stored=body["report"],
        )
    if result.outcome == "created":
        body["routes"] = list(accepted.routes)
        body["groups"] = list(result.group_ids)
        return _json(body, status=202)
    return _json(body, status=200)


@requires("read")
async def get_report(request: web.Request) -> web.Response:
    pipeline = request.app[PIPELINE]
    revisions = await pipeline.store.report_revisions(
        request.match_info["source"], request.match_info["id"]
    )
    if not revisions:
        return problem(404, "Not Found", "no report with that source and id")
    latest = revisions[-1]
    return _json(
        {
            "report": report_json(latest.report),
            "revisions": [
                {
                    **report_json(r.report),
                    "received_at": r.received_at.isoformat(),
                    "key": r.key_name,
                    "rules_version": r.rules_version,
                }
                for r in revisions
            ],
        }
    )


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token: Annotated[str, Field(min_length=20, max_length=4096, pattern=r"^[A-Za-z0-9_:.\-]+$")]
    platform: Literal["android", "ios"]
    locale: Literal["ar", "en"] = "ar"


@requires("devices:write")
async def post_device(request: web.Request) -> web.Response:
    pipeline = request.app[PIPELINE]
    key: ApiKey = request[KEY]
    if key.leader is None:
        return problem(403, "Forbidden", f"the key '{key.name}' is not bound to a leader")
    if key.leader not in pipeline.rules.current.leaders:
        return problem(
            403,
            "Forbidden",
            f"the key '{key.name}' is bound to leader '{key.leader}', who is not in the rules",
        )
    data = await _read_json(request)
    if isinstance(data, web.Response):
        return data
    if not isinstance(data, dict):
        return problem(422, "Invalid device", errors=[FieldError("(device)", "must be an object")])
    try:
        device_in = DeviceIn.model_validate(data)
    except ValidationError as exc:
        return problem(422, "Invalid device", "nothing was stored", errors=field_errors(exc))
    device, created = await pipeline.store.register_device(
        leader_id=key.leader,
        token=device_in.token,
        platform=device_in.platform,
        locale=device_in.locale,
        now=pipeline.clock(),
    )
    return _json(
        {
            "device": {
                "id": device.id,
                "leader": device.leader_id,
                "platform": device.platform,
                "locale": device.locale,
                "token": redact_token(device.token),
            }
        },
        status=201 if created else 200,
    )


@requires(PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    pipeline = request.app[PIPELINE]
    try:
        await pipeline.store.ping()
    except Exception as exc:
        return _json({"status": "unavailable", "store": f"error: {type(exc).__name__}"}, 503)
    return _json({"status": "ok", "store": "ok", "rules_version": pipeline.rules.current.version})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/reports", post_report)
    app.router.add_get("/v1/reports/{source}/{id}", get_report)
    app.router.add_post("/v1/devices", post_device)
    app.router.add_get("/healthz", healthz)
