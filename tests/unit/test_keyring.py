"""The key ring: config keys first, then the database through a one-second cache."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from dispatcher.settings import ApiKey
from dispatcher.store.access import KeyRow
from dispatcher.web.auth import KeyRing, StoredKey, hash_key, key_id, stored_id

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
CONFIG = ApiKey(name="desk", sha256=hash_key("desk-key"), scopes=["admin"])


class Table:
    """api_keys as the ring reads it, counting the reads."""

    def __init__(self) -> None:
        self.rows: dict[str, KeyRow] = {}
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    def add(self, key: str, name: str) -> KeyRow:
        row = KeyRow(f"key_{name}", name, ("devices:write",), "idleb-lead-1", T0, "test")
        self.rows[hash_key(key)] = row
        return row

    async def fetch(self, digest: str) -> KeyRow | None:
        self.reads += 1
        await self.gate.wait()
        return self.rows.get(digest)


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_config_keys_need_no_database() -> None:
    table = Table()
    ring = KeyRing([CONFIG], table.fetch)
    assert await ring.lookup("desk-key") is CONFIG
    assert table.reads == 0
    assert (key_id(CONFIG), stored_id(CONFIG)) == ("config:desk", None)


async def test_a_stored_key_is_cached_a_second_and_a_revocation_seen_after_it() -> None:
    table, clock = Table(), Monotonic()
    ring = KeyRing([CONFIG], table.fetch, clock=clock)
    row = table.add("phone-key", "phone")
    found = await ring.lookup("phone-key")
    assert isinstance(found, StoredKey)
    assert (found.id, found.name, found.leader, found.scopes) == (
        "key_phone", "phone", "idleb-lead-1", ["devices:write"],
    )  # fmt: skip
    assert ring.find("phone-key") == found, "answered from the cache, no await"
    assert table.reads == 1
    # Revoked by another instance: this one sees it once its cached copy is a second old.
    table.rows[hash_key("phone-key")] = replace(row, revoked_at=T0)
    clock.now += 0.99
    assert await ring.lookup("phone-key") == found
    clock.now += 0.02
    assert await ring.lookup("phone-key") is None
    assert table.reads == 2
    # A revoked key is told from one never made: its phone is stale, not guessing.
    assert ring.revoked("phone-key")
    assert await ring.lookup("never-made") is None
    assert not ring.revoked("never-made")


async def test_forget_refuses_a_key_revoked_here_at_once() -> None:
    table, clock = Table(), Monotonic()
    ring = KeyRing([], table.fetch, clock=clock)
    row = table.add("phone-key", "phone")
    assert await ring.lookup("phone-key") is not None
    table.rows[hash_key("phone-key")] = replace(row, revoked_at=T0)
    ring.forget()
    assert await ring.lookup("phone-key") is None


async def test_a_flood_of_one_bad_key_costs_one_read() -> None:
    table, clock = Table(), Monotonic()
    ring = KeyRing([], table.fetch, clock=clock)
    table.gate.clear()
    waiting = [asyncio.ensure_future(ring.lookup("bad")) for _ in range(500)]
    await asyncio.sleep(0)
    table.gate.set()
    assert await asyncio.gather(*waiting) == [None] * 500
    assert table.reads == 1
    assert await ring.lookup("bad") is None
    assert table.reads == 1, "unknown keys are cached too"
    clock.now += 1.01
    # A key made by the CLI a moment ago is admitted once the negative entry is gone.
    table.add("bad", "new")
    assert await ring.lookup("bad") is not None


async def test_many_different_bad_keys_query_at_most_two_at_a_time() -> None:
    table, clock = Table(), Monotonic()
    ring = KeyRing([], table.fetch, clock=clock, readers=2)
    table.gate.clear()
    waiting = [asyncio.ensure_future(ring.lookup(f"bad-{n}")) for n in range(50)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert table.reads == 2
    table.gate.set()
    assert await asyncio.gather(*waiting) == [None] * 50


async def test_uses_are_noted_and_taken_once() -> None:
    table = Table()
    ring = KeyRing([CONFIG], table.fetch)
    table.add("phone-key", "phone")
    phone = await ring.lookup("phone-key")
    assert phone is not None
    ring.used(phone)
    ring.used(phone)
    ring.used(CONFIG)
    assert ring.take_used() == {"key_phone", "config:desk"}
    assert ring.take_used() == set()
