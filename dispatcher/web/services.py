"""What the web handlers use, each on the app under its own typed key, and what they read
from a request.

The composition root (`app.make_app`) sets every key; a handler takes only the services it
needs (`request.app[GROUPS]`, `request.app[RULES]` ...), each a small protocol (the store's
are in `store/ports.py`, `Intake` is here), so that a test can set a stand-in for one of
them. No handler sees the whole pipeline: `INTAKE` is its one door for reports.

Helpers here return plain values or raise `ProblemError` (the body reader, `read_body` and
`read_json`, is web/body.py's, re-exported); see `dispatcher/web/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pydantic_core
from aiohttp import web

from dispatcher.clock import Clock
from dispatcher.intake import ReportIn
from dispatcher.metrics import Metrics
from dispatcher.notify.base import Channel
from dispatcher.pipeline import Accepted
from dispatcher.rules.live import LiveRules
from dispatcher.settings import ApiKey
from dispatcher.store.ports import (
    DeviceStore,
    GroupStore,
    Health,
    KeyStore,
    OutboxStore,
    ReportStore,
    RuleSetStore,
    SilenceStore,
)
from dispatcher.web.auth import KEY
from dispatcher.web.body import read_body, read_json
from dispatcher.web.problems import ProblemError


class Intake(Protocol):
    """Where reports go in: placed, routed and stored in one transaction (the pipeline)."""

    async def accept_many(self, wires: Sequence[ReportIn], *, key_name: str) -> list[Accepted]:
        """Returns once committed, one `Accepted` per report, in order."""
        ...


INTAKE: web.AppKey[Intake] = web.AppKey("intake")
RULES: web.AppKey[LiveRules] = web.AppKey("rules")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
REPORTS: web.AppKey[ReportStore] = web.AppKey("reports")
GROUPS: web.AppKey[GroupStore] = web.AppKey("groups")
OUTBOX: web.AppKey[OutboxStore] = web.AppKey("outbox")
DEVICES: web.AppKey[DeviceStore] = web.AppKey("devices")
SILENCES: web.AppKey[SilenceStore] = web.AppKey("silences")
RULE_SETS: web.AppKey[RuleSetStore] = web.AppKey("rule_sets")
KEYS: web.AppKey[KeyStore] = web.AppKey("keys")
HEALTH: web.AppKey[Health] = web.AppKey("health")

__all__ = [
    "CHANNELS", "CLOCK", "DEVICES", "GROUPS", "HEALTH", "INTAKE", "KEYS", "METRICS", "OUTBOX",
    "REPORTS", "RULES", "RULE_SETS", "SILENCES", "Intake", "device_leader", "json_response",
    "read_body", "read_json",
]  # fmt: skip
CHANNELS: web.AppKey[Mapping[str, Channel]] = web.AppKey("channels")  # by name


def json_response(data: Any, status: int = 200) -> web.Response:
    # pydantic-core's encoder: several times the stdlib's speed on large batch answers.
    return web.Response(
        status=status,
        body=pydantic_core.to_json(data),
        content_type="application/json",
        charset="utf-8",
    )


def device_leader(request: web.Request) -> str:
    """The leader a device key stands for; 403 if it stands for none, or one the rules no
    longer hold."""
    key: ApiKey = request[KEY]
    if key.leader is None:
        raise ProblemError(403, "Forbidden", f"the key '{key.name}' is not bound to a leader")
    if key.leader not in request.app[RULES].current.leaders:
        raise ProblemError(
            403,
            "Forbidden",
            f"the key '{key.name}' is bound to leader '{key.leader}', who is not in the rules",
        )
    return key.leader
