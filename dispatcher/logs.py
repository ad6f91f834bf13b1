"""Logs an operator can use: plain lines for a terminal, or one JSON object a line.

`logging.format: json` (or `DISPATCHER_LOGGING__FORMAT=json`) writes each record as
`{"time", "level", "logger", "message"}` plus, where known, `request_id` (the request being
answered, also sent back as `X-Request-Id`), `report_id` (`source/id`) and `group_id` (the
alert group being flushed), and `error` with the traceback. The ids live in context
variables: the request middleware sets the first, the pipeline the others, so every line
logged while handling them carries them without being passed along.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REPORT_ID: ContextVar[str | None] = ContextVar("report_id", default=None)
GROUP_ID: ContextVar[str | None] = ContextVar("group_id", default=None)

_CONTEXT = (("request_id", REQUEST_ID), ("report_id", REPORT_ID), ("group_id", GROUP_ID))
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines say nothing an operator needs (Alembic announces its plugins
# and its context at every start; we say the schema revision in one line of our own).
QUIET = ("apscheduler", "httpx", "alembic")

Format = Literal["plain", "json"]


class JsonFormatter(logging.Formatter):
    """One JSON object a line; the time in UTC with milliseconds."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, object] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _CONTEXT:
            value = var.get()
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(fmt: Format = "plain", level: str = "INFO") -> None:
    """Send every log record to stderr in `fmt`, replacing what was set before."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(PLAIN))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def current() -> tuple[Format, str]:
    """The format and level set in this process, for a child process to log alike."""
    root = logging.getLogger()
    json_lines = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    return ("json" if json_lines else "plain"), logging.getLevelName(root.getEffectiveLevel())


@contextlib.contextmanager
def context(var: ContextVar[str | None], value: str | None) -> Iterator[None]:
    """Set one of the ids above for the lines logged inside the block."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)
