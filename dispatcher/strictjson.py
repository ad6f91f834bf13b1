"""Strict JSON: the one decoder of the bodies reporters send, and NDJSON's lines.

Pure. NaN and Infinity are not JSON and are refused, as are numbers past a float's range
(1e309) and objects that repeat a key (parsers disagree on which copy wins; we take
neither). Nesting too deep for the parser (a 10,000-deep array) is refused, not a crash.
NDJSON splits on "\\n" only (a CR before it is dropped): U+2028, U+2029 and U+0085 inside a
JSON string are text, not line ends, whatever `str.splitlines` thinks.
"""

from __future__ import annotations

import json
import math
from typing import Any


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
    return [line for _, line in numbered_lines(raw)]


def numbered_lines(raw: bytes) -> list[tuple[int, bytes]]:
    """`ndjson_lines` with each line's number (from 1, blank lines counted), for messages
    that name the line of a file."""
    lines = []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            lines.append((n, line))
    return lines
