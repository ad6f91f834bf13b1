"""Waiting in tests for what a running service does in its own time (a push recorded, the
rules reloaded, a process gone): look again until it shows, and fail saying what was last
seen."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def until(
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], object] = ...,
    *,
    within: float = ...,
    every: float = ...,
    what: str = ...,
) -> T: ...
@overload
async def until(
    probe: Callable[[], T],
    ok: Callable[[T], object] = ...,
    *,
    within: float = ...,
    every: float = ...,
    what: str = ...,
) -> T: ...
async def until(
    probe: Callable[[], Any],
    ok: Callable[[Any], object] = bool,
    *,
    within: float = 10.0,
    every: float = 0.05,
    what: str = "the awaited state",
) -> Any:
    """What `probe` returns (it may be a coroutine function) once `ok` holds for it, looking
    every `every` seconds; AssertionError with the last value after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if ok(value):
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"{what} did not come within {within} s; last seen: {value!r}")
        await asyncio.sleep(every)
