"""The console channel: pushes written to the log, for a service with no FCM credentials.

It lets a newcomer see the whole path work with no cloud account; tokens are redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from dispatcher.notify.base import Push, PushResult, redact_token

log = logging.getLogger("dispatcher.push.console")


class ConsoleChannel:
    name = "console"

    def __init__(self, reason: str) -> None:
        self._reason = reason
        self._sent = 0

    def describe(self) -> str:
        return f"console ({self._reason})"

    async def send(self, pushes: Sequence[Push]) -> list[PushResult]:
        results = []
        for push in pushes:
            self._sent += 1
            log.info(
                "push to %s (%s, %s priority): %s | %s | %s",
                redact_token(push.token),
                push.platform,
                push.priority,
                push.title,
                push.body.replace("\n", " / "),
                push.data,
            )
            results.append(PushResult(push.ref, ok=True, message_name=f"console/{self._sent}"))
        return results

    async def close(self) -> None:
        return None
