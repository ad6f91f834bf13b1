"""Request bodies: the one reader of JSON (and NDJSON) for every endpoint that takes one.

Strict JSON, the same for every endpoint: NaN and Infinity are not JSON and are refused, as
are numbers past a float's range (1e309) and objects that repeat a key (parsers disagree on
which copy wins; we take neither). Nesting too deep for the parser (a 10,000-deep array) is
a 400 naming the problem, not a crash. NDJSON splits on "\\n" only (a CR before it is
dropped): U+2028, U+2029 and U+0085 inside a JSON string are text, not line ends. What the
schema says about each field (types, NUL, lone surrogates, times) is the models' part
(`intake.Wire`); each answer names the field.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from dispatcher.intake import FieldError, field_errors
from dispatcher.web.problems import problem

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson")


class NotJson(ValueError):
    """The text is not JSON this API takes; the message says why, for a person."""


def _refuse_constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON number; numbers must be finite")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotJson(f"the number {text[:40]} is out of range")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key[:100].encode("utf-8", "backslashreplace").decode()
                raise NotJson(f"the key {shown!r} appears twice in one object")
            seen.add(key)
    return out


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_constant=_refuse_constant, parse_float=_finite
)


def loads(text: str | bytes) -> Any:
    """Decode strict JSON; NotJson saying what is wrong."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return _DECODER.decode(text)
    except RecursionError:
        raise NotJson("it is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise NotJson(f"it is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except NotJson:
        raise
    except ValueError as exc:  # JSONDecodeError, and int() past 4,300 digits
        raise NotJson(str(exc)) from None


def ndjson_lines(raw: bytes) -> list[bytes]:
    """The lines of an NDJSON body: split on LF only, a trailing CR dropped, blank lines
    skipped."""
    lines = []
    for line in raw.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            lines.append(line)
    return lines


def _ndjson_item(line: bytes) -> Any:
    """One NDJSON line; a broken line becomes that item's error, not the whole batch's."""
    try:
        return loads(line)
    except NotJson as exc:
        return [FieldError("(line)", f"not valid JSON: {exc}")]


def media_type_problem(request: web.Request, allowed: tuple[str, ...]) -> web.Response | None:
    if request.content_type in allowed:
        return None
    return problem(
        415,
        "Unsupported Media Type",
        f"send Content-Type {' or '.join(allowed)}, not '{request.content_type}'",
    )


async def read_json(request: web.Request, *, ndjson: bool = False) -> Any | web.Response:
    """The decoded body, or the problem to answer: 415, 413 (raised by aiohttp) or 400.
    An NDJSON body is a list whose broken lines are lists of `FieldError`."""
    refused = media_type_problem(request, JSON_TYPES + (NDJSON_TYPES if ndjson else ()))
    if refused is not None:
        return refused
    raw = await request.read()  # raises 413 past the configured size
    if request.content_type in NDJSON_TYPES:
        return [_ndjson_item(line) for line in ndjson_lines(raw)]
    try:
        return loads(raw)
    except NotJson as exc:
        return problem(400, "Bad Request", f"the body is not valid JSON: {exc}")


M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, model: type[M], *, what: str) -> M | web.Response:
    """A JSON object body as `model`, or the problem to answer (400/413/415, or 422 naming
    each bad field)."""
    data = await read_json(request)
    if isinstance(data, web.Response):
        return data
    if not isinstance(data, dict):
        return problem(
            422, f"Invalid {what}", errors=[FieldError(f"({what})", "must be an object")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return problem(422, f"Invalid {what}", "nothing was stored", errors=field_errors(exc))
