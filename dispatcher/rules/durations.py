"""Durations as operators write them: 500ms, 30s, 2m, 1h30m, 1d."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
EXAMPLE = "write it like 30s, 2m, 1h30m or 500ms"
MAX_DAYS = 100 * 366  # a century: longer than any wait, window or retention makes sense


def parse_duration(text: str) -> timedelta:
    """Parse "1h30m" into a timedelta; raise ValueError saying how to write one."""
    s = text.strip()
    if not s:
        raise ValueError(f"empty duration; {EXAMPLE}")
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        digits = m.group(1)
        if len(digits) > 12:  # past any timedelta; and int() refuses 4,300 digits and more
            raise ValueError(f"'{text}' is too long; the longest is {MAX_DAYS} days")
        total += int(digits) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"'{text}' is not a duration; {EXAMPLE}")
    if total > MAX_DAYS * 86400:
        raise ValueError(f"'{text}' is too long; the longest is {MAX_DAYS} days")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    ms = round(value.total_seconds() * 1000)
    if ms % 1000:
        return f"{ms}ms"
    s = ms // 1000
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out or "0s"
