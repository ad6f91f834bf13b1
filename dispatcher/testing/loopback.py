"""What the push-service emulators (fcm_emulator.py, webpush_emulator.py) share: an aiohttp
server on loopback, started and stopped, and the faults a push service plays on demand.

Faults come two ways. `fail_next` queues the next N failures (to one device, if given) for a
test that wants one exact answer. A `Chaos` spell fails a seeded share of the sends: 503 and
429 with Retry-After, connections dropped mid-request, and answers held past the client's
timeout after the message was delivered; the fault suite runs one over FCM and Web Push at
once. Every valid send is kept as an `Attempt`, however it was answered, so a test can tell
when each retry came and what the device got.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Self

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Attempt:
    """One valid send and how it was answered: `status` 0 is a connection dropped without
    an answer. `at` and `answered_at` are time.monotonic() seconds; a slow answer is
    answered long after it arrived. `token` is the device's: FCM's registration token or
    the Web Push subscription's endpoint."""

    token: str
    group_id: str | None
    seq: str | None
    collapse_key: str | None  # FCM's android collapse_key, Web Push's Topic
    at: float
    answered_at: float
    status: int
    retry_after: float | None
    delivered: bool  # the device got it (a slow answer still delivers)


@dataclass(frozen=True, slots=True)
class Chaos:
    """A push service having a bad minute: of the sends, `share` fail, in equal parts as
    503 and 429 answers with Retry-After (whole seconds from `retry_after`), connections
    dropped mid-request, and answers held `slow` seconds (past the client's timeout) after
    the message was delivered. Which sends fail comes from `rng`, so a seed replays them;
    the kinds take turns, each once per round in a random order."""

    rng: random.Random
    share: float = 0.3
    retry_after: tuple[int, int] = (1, 3)
    slow: float = 2.0
    kinds: tuple[str, ...] = ("503", "429", "drop", "slow")


@dataclass(slots=True)
class Fault:
    """How to fail a send: `status` 0 drops the connection unanswered; 200 delivers the
    message and holds the answer `hold` seconds."""

    count: int
    status: int
    retry_after: float | None = None
    target: str | None = None  # only sends to this device
    code: str = ""  # FCM's error code
    hold: float = 0.0


class FaultPlan:
    """The faults queued by `fail_next`, then the chaos spell, if one is on."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self._chaos: Chaos | None = None
        self._round: list[str] = []

    def queue(self, fault: Fault) -> None:
        self._queue.append(fault)

    def chaos(self, chaos: Chaos | None) -> None:
        self._chaos = chaos
        self._round = []

    def next(self, target: str, *, chaos: bool = True) -> Fault | None:
        """The fault for this send to `target`, if any; the spell applies only if `chaos`
        (a send that would be refused anyway is not the spell's)."""
        for fault in self._queue:
            if fault.target is None or fault.target == target:
                fault.count -= 1
                if fault.count <= 0:
                    self._queue.remove(fault)
                return fault
        spell = self._chaos
        if not chaos or spell is None or spell.rng.random() >= spell.share:
            return None
        # Each kind once per round, in a seeded order: every kind shows within a few faults.
        if not self._round:
            self._round = spell.rng.sample(spell.kinds, len(spell.kinds))
        kind = self._round.pop()
        if kind == "drop":
            return Fault(1, 0)
        if kind == "slow":
            return Fault(1, 200, hold=spell.slow)
        return Fault(1, int(kind), float(spell.rng.randint(*spell.retry_after)))


def drop(request: web.Request) -> NoReturn:
    """End the connection mid-request: no status line, no body."""
    if request.transport is not None:
        request.transport.abort()
    raise ConnectionResetError("emulated: connection dropped mid-request")


class LoopbackServer:
    """An aiohttp application on loopback, with the life a test fixture needs and a
    `received` list that tests wait on."""

    max_body = 1024 * 1024
    _runner: web.AppRunner | None = None
    _host = "127.0.0.1"
    _port = 0

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        app = web.Application(client_max_size=self.max_body)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self._host = host
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def _wait_received(
        self,
        received: Sequence[Any],
        changed: asyncio.Condition,
        count: int,
        within: float,
        failure: Callable[[], str],
    ) -> None:
        async with changed:
            try:
                await asyncio.wait_for(changed.wait_for(lambda: len(received) >= count), within)
            except TimeoutError:
                raise AssertionError(failure()) from None


def serve_until_interrupted(start: Callable[[], Any]) -> None:
    """Run an emulator's `start` coroutine and keep serving until Ctrl-C (the CLIs)."""

    async def forever() -> None:
        server = await start()
        try:
            await asyncio.Event().wait()
        finally:
            await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(forever())
