"""Reports over HTTP: reports in (one, or a batch of up to 1,000), and a report with every
revision out.

Handlers parse and answer; the pipeline does the work, behind `INTAKE` (web/services.py).
A report is answered only after it is committed: 202 for a new report or revision, 200 for
one already stored, 409 for a revision older than the stored one or for a stored revision
sent again with other content.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from aiohttp import web

from dispatcher.intake import (
    FieldError,
    ReportIn,
    is_ident,
    parse_batch_json,
    parse_report,
    parse_report_json,
    report_json,
)
from dispatcher.pipeline import Accepted
from dispatcher.resend import conflict_detail
from dispatcher.rules.load import RuleSet
from dispatcher.settings import ApiKey
from dispatcher.store.writer_wire import SaveResult
from dispatcher.web.auth import KEY, requires
from dispatcher.web.body import JSON_TYPES, NDJSON_TYPES, read_json
from dispatcher.web.openapi import documented
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import CLOCK, INTAKE, METRICS, REPORTS, RULES, json_response

MAX_BATCH = 1000
STATUS_WORD = {
    "created": "accepted", "duplicate": "duplicate", "stale": "stale", "conflict": "conflict"
}  # fmt: skip
HTTP_STATUS = {"created": 202, "duplicate": 200, "stale": 409, "conflict": 409}


def _is_errors(item: Any) -> bool:
    return isinstance(item, list) and all(isinstance(e, FieldError) for e in item) and bool(item)


def _result_json(accepted: Accepted, rules: RuleSet) -> dict[str, Any]:
    """The answer to a single report: the stored report, where it was placed and routed."""
    result = accepted.result
    stored = result.stored.report
    body: dict[str, Any] = {
        "status": STATUS_WORD[result.outcome],
        "report": report_json(stored),
        "received_at": result.stored.received_at.isoformat(),
        "region": {
            "id": stored.region,
            "path": list(rules.region_path(stored.region)),
            "name": rules.region_name(stored.region, "en"),
            "name_ar": rules.region_name(stored.region, "ar"),
        },
    }
    if result.outcome == "created":
        body["merged"] = result.merged
        alerting = len(accepted.routes) - accepted.surges
        body["routes"] = list(accepted.routes[:alerting])
        body["groups"] = list(result.group_ids[:alerting])
        if accepted.surges:
            body["surges"] = [
                {"route": route, "group": group}
                for route, group in zip(
                    accepted.routes[alerting:], result.group_ids[alerting:], strict=True
                )
            ]
    return body


def _item_json(index: int, accepted: Accepted) -> dict[str, Any]:
    """One report's result in a batch answer: what became of it, not the report again
    (a batch of 1,000 would otherwise echo all of it; GET /v1/reports/{source}/{id} has it)."""
    result = accepted.result
    stored = result.stored.report
    item: dict[str, Any] = {
        "index": index,
        "status": HTTP_STATUS[result.outcome],
        "outcome": STATUS_WORD[result.outcome],
        "id": stored.id,
        "source": stored.source,
        "revision": stored.revision,
        "region": stored.region,
        "incident": stored.incident,
    }
    if result.outcome == "created":
        item["merged"] = result.merged
    elif result.outcome == "conflict":
        item["differs"] = [d.field for d in result.differences]
        item["errors"] = _difference_errors(result)
    return item


def _difference_errors(result: SaveResult) -> list[dict[str, str]]:
    return [FieldError(d.field, d.message).to_json() for d in result.differences]


def _conflict(result: SaveResult) -> ProblemError:
    """The 409 for a resend of a held revision with other content: nothing changed."""
    stored = result.stored.report
    return ProblemError(
        409,
        "Conflicting resend",
        conflict_detail(stored.revision, result.newest, result.differences),
        errors=[FieldError(d.field, d.message) for d in result.differences],
        differs=[d.field for d in result.differences],
        stored=report_json(stored),
    )


async def _fast_parse(
    request: web.Request, now: datetime, rules: RuleSet
) -> tuple[bool, list[ReportIn | list[FieldError]]] | None:
    """(batch?, parsed) for a JSON object, or a JSON array whose every item is valid, each
    parsed and validated in one pass; None for anything else (NDJSON, an array with an
    invalid item, a body that is not JSON), which the general path handles."""
    if request.content_type not in JSON_TYPES:
        return None
    raw = await request.read()  # kept by aiohttp: the general path reads it again for free
    first = raw.lstrip()[:1]
    if first == b"{":
        one = parse_report_json(raw, now=now, resolve_region=rules.resolve_region)
        return None if one is None else (False, [one])
    if first != b"[":
        return None
    parsed = parse_batch_json(raw, now=now, resolve_region=rules.resolve_region)
    return (True, parsed) if parsed is not None and 1 <= len(parsed) <= MAX_BATCH else None


@requires("reports:write")
@documented(
    "Post a report, or a batch of up to 1,000",
    description="A JSON object is one report: 202 once committed, 200 if that revision is "
    "already stored, 409 for an older revision, 422 naming each bad field. A JSON array, "
    "or NDJSON (one report a line, split on LF only), is a batch: 200 with a result per "
    "report.",
    body=ReportIn,
    body_schema={
        "oneOf": [
            {"$ref": "#/components/schemas/ReportIn"},
            {
                "type": "array",
                # Each item is meant to be a report, but is checked alone: an invalid one
                # fails by itself, in the batch's results, and the others are stored.
                "items": {"anyOf": [{"$ref": "#/components/schemas/ReportIn"}, {}]},
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "description": "a batch: each item a report, each checked alone",
            },
        ]
    },
    body_media={t: {"type": "string", "description": "one report a line"} for t in NDJSON_TYPES},
    responses={
        200: "the report was already stored; or a batch's results",
        202: "the report was stored, placed and routed",
        409: "an older revision than the stored one; nothing was changed",
    },
    tags=["reports"],
)
async def post_report(request: web.Request) -> web.Response:
    """One report (a JSON object) or a batch (a JSON array, or NDJSON) of up to 1,000."""
    rules = request.app[RULES].current
    now = request.app[CLOCK]()
    fast = await _fast_parse(request, now, rules)
    if fast is not None:
        batch, parsed = fast
    else:
        data = await read_json(request, ndjson=True)
        batch = isinstance(data, list)
        items = data if batch else [data]
        if batch and not 1 <= len(items) <= MAX_BATCH:
            raise ProblemError(
                413 if items else 422,
                "Batch size",
                f"a batch holds 1 to {MAX_BATCH} reports; this one has {len(items)}",
            )
        parsed = [
            item
            if _is_errors(item)
            else parse_report(item, now=now, resolve_region=rules.resolve_region)
            for item in items
        ]
    valid = [p for p in parsed if not isinstance(p, list)]
    if len(valid) != len(parsed):
        request.app[METRICS].invalid_reports.inc(len(parsed) - len(valid))
    key: ApiKey = request[KEY]
    accepted = iter(
        await request.app[INTAKE].accept_many(valid, key_name=key.name) if valid else []
    )

    if not batch:
        if isinstance(parsed[0], list):
            raise ProblemError(422, "Invalid report", "nothing was stored", errors=parsed[0])
        one = next(accepted)
        if one.result.outcome == "conflict":
            raise _conflict(one.result)
        if one.result.outcome == "stale":
            stored = one.result.stored.report
            raise ProblemError(
                409,
                "Stale revision",
                f"revision {parsed[0].revision} is older than the stored revision "
                f"{stored.revision}; nothing was changed",
                stored=report_json(stored),
            )
        return json_response(_result_json(one, rules), status=HTTP_STATUS[one.result.outcome])

    results: list[dict[str, Any]] = []
    for index, p in enumerate(parsed):
        if isinstance(p, list):
            errors = [e.to_json() for e in p]
            results.append({"index": index, "status": 422, "outcome": "invalid", "errors": errors})
        else:
            results.append(_item_json(index, next(accepted)))
    outcomes = Counter(r["outcome"] for r in results)
    summary = {
        word: outcomes[word] for word in ("accepted", "duplicate", "stale", "conflict", "invalid")
    }
    return json_response({**summary, "results": results}, status=200)


@requires("read")
@documented(
    "A report with every revision", responses={200: "the report", 404: ""}, tags=["reports"]
)
async def get_report(request: web.Request) -> web.Response:
    source, rid = request.match_info["source"], request.match_info["id"]
    revisions = (
        await request.app[REPORTS].report_revisions(source, rid)
        if is_ident(source) and is_ident(rid)
        else []
    )
    if not revisions:
        raise ProblemError(404, "Not Found", "no report with that source and id")
    latest = revisions[-1]
    return json_response(
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


def add_report_routes(app: web.Application) -> None:
    app.router.add_post("/v1/reports", post_report)
    app.router.add_get("/v1/reports/{source}/{id}", get_report)
