"""What checking an API key costs a request: a config key, a database key from the cache,
a flood of unknown keys (each a database read, at most two at a time), and the limit on
unknown keys per address (its bookkeeping for a good key: one address, many addresses, and
many addresses with failures on record).

    .venv/bin/python bench/auth.py [--n 200000]

Runs the key ring (dispatcher/web/auth.py) on a fresh SQLite file with the service's
reader, without HTTP: the figures are the ring's own, per presented key.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dispatcher.guessing import client_address
from dispatcher.settings import ApiKey
from dispatcher.store import db
from dispatcher.store.repo import Store
from dispatcher.web.auth import KeyGuessing, KeyRing, hash_key


def limit_bookkeeping(n: int) -> None:
    """What the middleware adds for a good key: whose address, may it be looked up, it worked."""
    digest = hash_key("db-key")
    t = datetime.now(UTC)
    for label, addresses, failing in (
        ("one address", ["198.51.100.7"], 0),
        ("50k addresses", [f"10.0.{i // 256}.{i % 256}" for i in range(50_000)], 0),
        ("with 50k failing", ["198.51.100.7"], 50_000),
    ):  # fmt: skip
        guard = KeyGuessing(clock=lambda: t)
        for i in range(failing):  # spread over the window: each call expires what fell due
            guard.unknown(f"172.16.{i // 256 % 256}.{i % 256}", t - timedelta(seconds=599))
        t0 = time.perf_counter()
        for i in range(n):
            client = client_address(addresses[i % len(addresses)], [], ())
            now = guard.clock()
            assert guard.wait(client, digest, now) is None
            guard.worked(client, digest, now)
        per = (time.perf_counter() - t0) / n * 1e6
        print(f"{'limit, ' + label:>28}: {per:.2f} µs per request with a good key")


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'auth.db'}"
        engine = db.create_engine(url)
        await db.upgrade(engine)
        store = Store(engine, writer=db.create_writer(url), reader=db.create_reader(url))
        try:
            await store.add_key(
                name="phone", sha256=hash_key("db-key"), scopes=["devices:write"],
                leader_id="x", now=datetime.now(UTC), created_by="bench",
            )  # fmt: skip
            config = ApiKey(name="desk", sha256=hash_key("config-key"), scopes=["admin"])
            ring = KeyRing([config], store.key_by_hash)
            for label, key in (("config key", "config-key"), ("database key", "db-key")):
                await ring.lookup(key)
                t0 = time.perf_counter()
                for _ in range(n):
                    found = ring.find(key)
                    if not isinstance(found, ApiKey):
                        found = await ring.lookup(key)
                    assert found is not None
                    ring.used(found)
                per = (time.perf_counter() - t0) / n * 1e6
                print(f"{label:>14}: {per:.2f} µs per request (hash, lookup, use noted)")
            bad = 5000
            t0 = time.perf_counter()
            await asyncio.gather(*(ring.lookup(f"bad-{i}") for i in range(bad)))
            wall = time.perf_counter() - t0
            print(f"{'unknown keys':>14}: {bad / wall:.0f} distinct bad keys/s answered 401 "
                  f"(one indexed read each, two at a time)")  # fmt: skip
        finally:
            await store.close()
    limit_bookkeeping(n)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    asyncio.run(main(ap.parse_args().n))
