"""A `dispatcher serve` that pushes through the FCM emulator, for the fault tests that kill
a sending service: the rules-e2e leaders with a phone key each, an observatory that reports,
places in their regions, and the environment that points the service at the emulator."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tests.support.harness import TESTDATA
from tests.support.process import serve_env

LEADERS = ["harim-lead-1", "idleb-lead-1", "idleb-lead-2"]
PLACES = [(36.15, 36.6), (35.8, 36.3), (35.93, 36.63)]  # (lat, lon) in Idleb, one in Harim


def key(name: str, *scopes: str, leader: str | None = None) -> dict[str, Any]:
    return {"name": name, "sha256": hashlib.sha256(f"k-{name}".encode()).hexdigest(),
            "scopes": list(scopes), "leader": leader}  # fmt: skip


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k-{name}"}


def pushing_env(db_url: str, fcm_base_url: str, fcm_credentials: Path) -> dict[str, str]:
    """The service's environment: the observatory's and each leader's key, FCM at the
    emulator, retries quick (200 ms, at most 1 s)."""
    keys = [key("observatory", "reports:write", "read")]
    keys += [key(leader, "devices:write", leader=leader) for leader in LEADERS]
    env = serve_env(
        db_url=db_url, rules=TESTDATA / "rules-e2e", keys=keys,
        DISPATCHER_PUSH__FCM__ENDPOINT=fcm_base_url,
        DISPATCHER_PUSH__RETRY_BASE="200ms", DISPATCHER_PUSH__RETRY_MAX="1s",
    )  # fmt: skip
    env["DISPATCHER_PUSH__FCM__CREDENTIALS"] = str(fcm_credentials)  # serve_env drops it
    return env
