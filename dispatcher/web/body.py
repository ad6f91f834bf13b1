"""Request bodies: the one reader of JSON (and NDJSON) for every endpoint that takes one.

The same for every endpoint: 415 for another media type, 413 past `server.max_body_bytes`,
400 for text that is not strict JSON (see dispatcher/strictjson.py), 422 naming each bad
field. What the schema says about each field (types, NUL, lone surrogates, times) is the
models' part (`intake.Wire`).
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from dispatcher.intake import FieldError, field_errors
from dispatcher.strictjson import NotJson, loads, ndjson_lines
from dispatcher.web.problems import ProblemError

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson")

__all__ = ["JSON_TYPES", "NDJSON_TYPES", "NotJson", "loads", "read_body", "read_json"]


def _ndjson_item(line: bytes) -> Any:
    """One NDJSON line; a broken line becomes that item's error, not the whole batch's."""
    try:
        return loads(line)
    except NotJson as exc:
        return [FieldError("(line)", f"not valid JSON: {exc}")]


def check_media_type(request: web.Request, allowed: tuple[str, ...]) -> None:
    """415 unless the body is of one of these media types."""
    if request.content_type in allowed:
        return
    raise ProblemError(
        415,
        "Unsupported Media Type",
        f"send Content-Type {' or '.join(allowed)}, not '{request.content_type}'",
    )


async def read_json(request: web.Request, *, ndjson: bool = False) -> Any:
    """The decoded body; 415, 413 (raised by aiohttp) or 400. An NDJSON body is a list
    whose broken lines are lists of `FieldError`."""
    check_media_type(request, JSON_TYPES + (NDJSON_TYPES if ndjson else ()))
    raw = await request.read()  # raises 413 past the configured size
    if request.content_type in NDJSON_TYPES:
        return [_ndjson_item(line) for line in ndjson_lines(raw)]
    try:
        return loads(raw)
    except NotJson as exc:
        raise ProblemError(400, "Bad Request", f"the body is not valid JSON: {exc}") from None


M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, model: type[M], *, what: str) -> M:
    """A JSON object body as `model`; 400/413/415, or 422 naming each bad field."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ProblemError(
            422, f"Invalid {what}", errors=[FieldError(f"({what})", "must be an object")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProblemError(
            422, f"Invalid {what}", "nothing was stored", errors=field_errors(exc)
        ) from None
