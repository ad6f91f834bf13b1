"""The API described: an OpenAPI 3.1 document at `/v1/openapi.json`, made from the routes the
app serves and the same pydantic models the handlers validate with.

How it stays true: each handler declares what it takes and answers next to its code,

    @requires("admin")
    @documented("Silence alert groups", body=SilenceIn, responses={201: "the silence"})
    async def add_silence(request): ...

and `document(app)` walks `app.router`: every route's method and path, its path parameters
(from `{name}`), the scope `@requires` stored on the handler (a bearer key with that scope;
none for `public`), the request body's JSON Schema from the model, and the answers, with
the problem+json ones every endpoint can give (401, 403 and 429 with a scope; 400, 413, 415
and 422 with a body) added by themselves. A route whose handler was not `@documented` is left
out, and `tests/acceptance/test_openapi.py` fails naming it: a new endpoint is documented
before it lands. HEAD routes are GET's shadows (aiohttp adds one per GET) and are not listed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from dispatcher import __version__
from dispatcher.web.auth import PUBLIC, SCOPE_ATTR, requires
from dispatcher.web.problems import PROBLEM_TYPE, Handler

DOC_ATTR = "__dispatcher_doc__"
PATH = "/v1/openapi.json"
REF = "#/components/schemas/{model}"

Schema = dict[str, Any]


@dataclass(frozen=True)
class Param:
    """A query (or path) parameter: its name, JSON Schema and meaning."""

    name: str
    schema: Schema
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Doc:
    summary: str
    description: str = ""
    body: type[BaseModel] | None = None  # a JSON object validated by this model
    body_schema: Schema | None = None  # or a schema of its own (with refs to `models`)
    body_media: Mapping[str, Schema] = field(default_factory=dict)  # more media types
    body_required: bool = True
    models: Sequence[type[BaseModel]] = ()  # models the schemas above refer to
    query: Sequence[Param] = ()
    path: Mapping[str, Schema] = field(default_factory=dict)  # path parameters' schemas
    responses: Mapping[int, str] = field(default_factory=dict)  # status: what it holds
    response_media: str | Sequence[str] = "application/json"  # of the 2xx answers
    json_statuses: Sequence[int] = ()  # errors answered in plain JSON, not problem+json
    tags: Sequence[str] = ()


def documented(summary: str, **details: Any) -> Callable[[Handler], Handler]:
    """Describe a handler for the OpenAPI document (see the module docstring)."""
    doc = Doc(summary, **details)

    def mark(handler: Handler) -> Handler:
        setattr(handler, DOC_ATTR, doc)
        return handler

    return mark


def doc_of(handler: object) -> Doc | None:
    return getattr(handler, DOC_ATTR, None)


# The operators' desk (dispatcher/web/desk): pages and the calls they make with a session
# cookie and a CSRF token, not Bearer keys; not this API, so neither listed nor required to be
# (docs/desk.md lists its calls).
NOT_THE_API = ("/desk",)


def served_routes(app: web.Application) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) of every route of the API the app serves, HEAD aside."""
    return [
        (route.method, route.resource.canonical, route.handler)
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and not route.resource.canonical.startswith(NOT_THE_API)
    ]


def undocumented(app: web.Application) -> list[str]:
    return [
        f"{method} {path}"
        for method, path, handler in served_routes(app)
        if doc_of(handler) is None
    ]


PROBLEM_SCHEMA: Schema = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` names each bad field.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "request_id": {"type": "string", "description": "as in the X-Request-Id header"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_REASONS = {
    400: "the body is not strict JSON, or a query parameter is bad (each one named)",
    401: "no API key, or an unknown one",
    403: "the key lacks the scope, or is not bound to the right leader",
    404: "not found",
    409: "a conflict with what is stored (see detail)",
    413: "the body is larger than server.max_body_bytes",
    415: "another media type than the ones listed",
    422: "fields that fail validation, each named",
    429: "too many unknown API keys from this address; send again after Retry-After (web/auth.py)",
    503: "the store does not answer, or too many reports wait for it; send again after "
    "Retry-After (web/unavailable.py)",
    507: "the database's disk is full; send again after Retry-After",
}


def _operation(path: str, handler: Handler, doc: Doc) -> Schema:
    op: Schema = {"summary": doc.summary, "operationId": handler.__name__}
    if doc.description:
        op["description"] = doc.description
    if doc.tags:
        op["tags"] = list(doc.tags)
    scope = getattr(handler, SCOPE_ATTR, None)
    public = scope == PUBLIC
    op["security"] = [] if public else [{"bearer": [scope]}]
    if not public:
        op["x-scope"] = scope
    params: list[Schema] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": doc.path.get(name, {"type": "string", "minLength": 1}),
        }
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": p.required,
            "schema": p.schema,
            **({"description": p.description} if p.description else {}),
        }
        for p in doc.query
    ]
    if params:
        op["parameters"] = params
    statuses = dict(doc.responses)
    if not public:
        statuses.setdefault(401, _REASONS[401])
        statuses.setdefault(403, _REASONS[403])
        statuses.setdefault(429, _REASONS[429])
    if doc.query:
        statuses.setdefault(400, _REASONS[400])
    has_body = doc.body is not None or doc.body_schema is not None
    if has_body:
        body_schema = doc.body_schema or {"$ref": REF.format(model=_name(doc.body))}
        content = {"application/json": {"schema": body_schema}}
        content.update({media: {"schema": s} for media, s in doc.body_media.items()})
        op["requestBody"] = {"required": doc.body_required, "content": content}
        for status in (400, 413, 415, 422, 503, 507):
            statuses.setdefault(status, _REASONS[status])
    responses: Schema = {}
    for status in sorted(statuses):
        text = statuses[status] or _REASONS.get(status, "")
        answer: Schema = {"description": text}
        if status in doc.json_statuses:
            answer["content"] = {"application/json": {"schema": {}}}
        elif status >= 400:
            answer["content"] = {PROBLEM_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}}
        elif 200 <= status < 300 and status != 204:
            media = doc.response_media
            answer["content"] = {
                m: {"schema": {}} for m in ([media] if isinstance(media, str) else media)
            }
        responses[str(status)] = answer
    op["responses"] = responses
    return op


def _name(model: type[BaseModel] | None) -> str:
    assert model is not None
    return model.__name__


def document(app: web.Application) -> Schema:
    """The OpenAPI 3.1 document of every documented route `app` serves."""
    paths: dict[str, Schema] = {}
    models: dict[str, type[BaseModel]] = {}
    routes = []
    for method, path, handler in served_routes(app):
        doc = doc_of(handler)
        if doc is None:
            continue
        routes.append((method, path, handler, doc))
        for model in (doc.body, *doc.models):
            if model is not None:
                models[model.__name__] = model
    _, defs = models_json_schema([(m, "validation") for m in models.values()], ref_template=REF)
    schemas: dict[str, Schema] = dict(defs.get("$defs", {}))
    schemas["Problem"] = PROBLEM_SCHEMA
    for method, path, handler, doc in routes:
        paths.setdefault(path, {})[method.lower()] = _operation(path, handler, doc)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dispatcher",
            "version": __version__,
            "description": "Field reports of strikes in; alerts to rescue-team leaders out. "
            "Errors are application/problem+json; every answer has an X-Request-Id.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`dispatcher keys new`); the scope each "
                    "operation needs is in its `security` entry and `x-scope`.",
                }
            },
        },
    }


_DOCUMENT = web.AppKey("openapi_document", bytes)


@requires(PUBLIC)
@documented("This document: the API in OpenAPI 3.1", responses={200: "the document"})
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_DOCUMENT], content_type="application/json")


async def _build(app: web.Application) -> None:
    app[_DOCUMENT] = json.dumps(document(app), ensure_ascii=False).encode()


def add_openapi_route(app: web.Application) -> None:
    """Serve the document, made once at start-up (when every route is added)."""
    app.router.add_get(PATH, openapi_json)
    app.on_startup.append(_build)
