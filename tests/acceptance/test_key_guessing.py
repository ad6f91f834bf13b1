"""The limit on guessing Bearer API keys, over the real server with a manual clock: an address
that sent too many unknown keys is answered 429 for what is left of the window, keys that
worked from it before go on working, other addresses never notice, and stale keys (revoked,
or none at all) are not counted as guesses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatcher.testing.clock import ManualClock
from dispatcher.web.auth import WRONG_KEYS
from tests.support.harness import Keys, Running, running, settings_for

NOW = datetime.now(UTC).replace(microsecond=0)
CENTRE, ELSEWHERE = "198.51.100.7", "203.0.113.5"  # as the trusted proxy says


def keys() -> Keys:
    k = Keys()
    k.add("desk", "admin")
    k.add("reporter", "reports:write")
    k.add("reader", "read")
    k.add("newcomer", "read")
    return k


@asynccontextmanager
async def service(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Running]:
    k = keys()
    settings = settings_for(tmp_path, k, server={"trusted_proxies": ["127.0.0.1/32"]})
    async with running(settings, k, clock=clock) as r:
        yield r


async def ask(r: Running, key: str | None, address: str) -> tuple[int, str, Any]:
    """(status, Retry-After, body) of a `read` request from `address` with `key` (a plain
    key, or no header)."""
    headers = {"X-Forwarded-For": address}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with r.http.get(r.url + "/v1/rules/status", headers=headers) as resp:
        return resp.status, resp.headers.get("Retry-After", ""), await resp.json()


async def refused_wrong_keys(r: Running) -> float:
    reader = r.keys.plain["reader"]
    async with r.http.get(
        r.url + "/metrics", headers={"Authorization": f"Bearer {reader}"}
    ) as resp:
        text = await resp.text()
    line = 'dispatcher_refused_requests_total{reason="wrong_keys"} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].removeprefix(line)) if found else 0.0


async def test_unknown_keys_shut_an_address_out_but_keys_that_worked_there_go_on(
    tmp_path: Path,
) -> None:
    clock = ManualClock(NOW)
    async with service(tmp_path, clock) as r:
        reader, newcomer = r.keys.plain["reader"], r.keys.plain["newcomer"]
        assert (await ask(r, reader, CENTRE))[0] == 200  # the reader has worked from here

        # A broken phone (or a guesser) at the centre, behind the same NAT.
        for n in range(WRONG_KEYS):
            status, wait, _ = await ask(r, f"guess-{n}", CENTRE)
            assert (status, wait) == (401, "")
        status, wait, problem = await ask(r, "guess-more", CENTRE)
        assert (status, wait) == (429, "600")
        assert problem["detail"] == (
            "too many unknown API keys from this address; try again in 600 s"
        )

        assert (await ask(r, reader, CENTRE))[0] == 200, "a key that worked here goes on working"
        # A right key that has not worked from here is not even looked up: a guesser cannot
        # tell a right key from a wrong one while the address waits.
        assert (await ask(r, newcomer, CENTRE))[:2] == (429, "600")
        assert await refused_wrong_keys(r) == 2.0

        # Other addresses never notice: their wrong keys are 401, their right keys work.
        assert (await ask(r, "typo", ELSEWHERE))[:2] == (401, "")
        assert (await ask(r, newcomer, ELSEWHERE))[0] == 200

        # Retry-After says what is left, and is true to the second.
        clock.advance(timedelta(minutes=4))
        assert (await ask(r, "guess-more", CENTRE))[:2] == (429, "360")
        clock.advance(timedelta(minutes=5, seconds=59))
        assert (await ask(r, newcomer, CENTRE))[:2] == (429, "1")
        clock.advance(timedelta(seconds=1))
        assert (await ask(r, newcomer, CENTRE))[0] == 200
        assert (await ask(r, "guess-more", CENTRE))[:2] == (401, ""), "it may try again"
        assert await refused_wrong_keys(r) == 4.0


async def test_refusals_that_are_no_guess_do_not_count(tmp_path: Path) -> None:
    """A phone retrying its revoked key, a client sending no key, a key lacking the scope:
    none of them shut its address out."""
    clock = ManualClock(NOW)
    async with service(tmp_path, clock) as r:
        desk = r.keys.plain["desk"]
        async with r.http.post(
            r.url + "/v1/admin/keys",
            json={"name": "old phone", "scopes": ["read"]},
            headers={"Authorization": f"Bearer {desk}"},
        ) as resp:
            assert resp.status == 201
            made = await resp.json()
        assert (await ask(r, made["key"], CENTRE))[0] == 200
        async with r.http.delete(
            r.url + f"/v1/admin/keys/{made['id']}", headers={"Authorization": f"Bearer {desk}"}
        ) as resp:
            assert resp.status == 200

        for _ in range(3 * WRONG_KEYS):
            assert (await ask(r, made["key"], CENTRE))[:2] == (401, ""), "revoked: no guess"
            assert (await ask(r, None, CENTRE))[:2] == (401, ""), "no key at all"
            async with r.http.get(
                r.url + "/v1/admin/keys",
                headers={
                    "Authorization": f"Bearer {r.keys.plain['reader']}",
                    "X-Forwarded-For": CENTRE,
                },
            ) as resp:
                assert resp.status == 403, "a known key without the scope"
        assert (await ask(r, r.keys.plain["newcomer"], CENTRE))[0] == 200
        for n in range(WRONG_KEYS):
            assert (await ask(r, f"guess-{n}", CENTRE))[0] == 401
        assert (await ask(r, "guess-more", CENTRE))[0] == 429, "unknown keys still count"
