"""Ingest speed over HTTP on loopback: single reports and batches, with wrk as the client.

Starts `dispatcher serve` on a fresh SQLite file (WAL, the configured synchronous level),
drives it with wrk (Debian package `wrk`), and prints accepted reports per second, latency
percentiles and the server's CPU-seconds per 100k reports.

    .venv/bin/python bench/ingest.py [--seconds 15] [--connections 64] [--batch 100]
        [--synchronous FULL|NORMAL] [--db-url URL] [--key-in config|database]

`--key-in database`: the reporter's key is kept in the database (api_keys), as keys made by
`dispatcher keys new` are, instead of the config: what the key cache costs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import service
from service import calibrate, cpu_split

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-ingest-key"

LUA = r"""
local counter = 0
local batch = 0
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(key)s"}
function setup(thread)
  thread:set("tid", tostring(math.random(1, 1e9)))
end
function init(args)
  batch = tonumber(args[1]) or 0
  now = args[2]
  -- wrk seeds no random numbers, so each run draws the same thread ids: the run's own
  -- mark keeps a second run on the same database from resending the first one's ids.
  tid = tid .. "-" .. args[3]
end
local kinds = {"airstrike", "shelling", "barrel_bomb", "missile", "explosion"}
-- Reports spread over Idleb and Aleppo governorates from 40 sources, a surge's shape:
-- most are separate incidents, some are second sightings of one.
local function one()
  counter = counter + 1
  return string.format(
    '{"id":"%%s-%%d","source":"src-%%d","kind":"%%s","occurred_at":"%%s",'
    .. '"location":{"lat":%%.5f,"lon":%%.5f},"casualties":{"killed":%%d,"injured":%%d}}',
    tid, counter, math.random(1, 40), kinds[math.random(1, #kinds)], now,
    35.4 + math.random() * 1.3, 36.0 + math.random() * 1.8, math.random(0, 3), math.random(0, 9))
end
request = function()
  local body
  if batch == 0 then
    body = one()
  else
    local items = {}
    for i = 1, batch do items[i] = one() end
    body = "[" .. table.concat(items, ",") .. "]"
  end
  return wrk.format("POST", "/v1/reports", headers, body)
end
response = function(status, headers, body)
  if status ~= 202 and status ~= 200 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end
"""


def store_key(db_url: str) -> None:
    """The bench's key in the database instead of the config."""
    from dispatcher.store import db
    from dispatcher.store.repo import Store

    async def add() -> None:
        engine = db.create_engine(db_url)
        await db.upgrade(engine)
        store = Store(engine)
        try:
            if await store.key_by_hash(hashlib.sha256(KEY.encode()).hexdigest()) is None:
                await store.add_key(
                    name="bench", sha256=hashlib.sha256(KEY.encode()).hexdigest(),
                    scopes=["reports:write", "read"], leader_id=None, now=datetime.now(UTC),
                    created_by="bench",
                )  # fmt: skip
        finally:
            await store.close()

    asyncio.run(add())


def start(
    db_url: str, synchronous: str, cwd: Path, key_in: str = "config"
) -> tuple[subprocess.Popen[str], str]:
    entry = {
        "name": "bench",
        "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
        "scopes": ["reports:write", "read"],
    }
    if key_in == "database":
        store_key(db_url)
    env = {
        "DISPATCHER_SERVER__PORT": "0",
        "DISPATCHER_STORAGE__URL": db_url,
        "DISPATCHER_STORAGE__SQLITE_SYNCHRONOUS": synchronous,
        "DISPATCHER_RULES__PATH": str(ROOT / "rules"),
        "DISPATCHER_AUTH__KEYS": json.dumps([entry] if key_in == "config" else []),
    }
    return service.start(env, cwd / "server.log", cwd=cwd)


def run_wrk(url: str, script: Path, *, seconds: int, connections: int, batch: int) -> str:
    cmd = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
        url, "--", str(batch), datetime.now(UTC).isoformat(timespec="seconds"),
        f"{time.time_ns():x}",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)  # noqa: S603
    errors = done.stderr.strip().splitlines()
    if errors:
        print(f"  {len(errors)} non-2xx answers, first: {errors[0][:200]}")
    return done.stdout


def percentile(out: str, p: str) -> str:
    m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
    return m.group(1) if m else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    ap.add_argument("--db-url", default=None, help="default: a fresh SQLite file")
    ap.add_argument("--key-in", choices=["config", "database"], default="config")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        script = tmpdir / "post.lua"
        script.write_text(LUA % {"key": KEY})
        db_url = args.db_url or f"sqlite+aiosqlite:///{tmpdir / 'bench.db'}"
        print(f"store: {db_url.split('?')[0]} (synchronous={args.synchronous}); "
              f"key in the {args.key_in}; "
              f"calibration: {calibrate():.0f} ms")  # fmt: skip
        for batch in (0, args.batch):
            proc, url = start(db_url, args.synchronous, tmpdir, args.key_in)
            try:
                time.sleep(0.5)
                cpu0, wall0 = cpu_split(proc.pid), time.monotonic()
                out = run_wrk(url, script, seconds=args.seconds, connections=args.connections,
                              batch=batch)  # fmt: skip
                own, writer = (b - a for a, b in zip(cpu0, cpu_split(proc.pid), strict=True))
                cpu = own + writer
                wall = time.monotonic() - wall0
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
                log = (tmpdir / "server.log").read_text()
                if "Traceback" in log:
                    print(
                        "  server errors, last line:",
                        log[log.index("Traceback") :].split("\n\n")[0].splitlines()[-1],
                    )
            m = re.search(r"^\s*(\d+) requests in", out, re.M)
            requests = int(m.group(1)) if m else 0
            reports = requests * max(1, batch)
            label = "single reports" if batch == 0 else f"batches of {batch}"
            print(
                f"{label:>16}: {requests / wall:9.0f} requests/s  {reports / wall:9.0f} reports/s"
                f"  p50 {percentile(out, '50')}  p99 {percentile(out, '99')}"
                f"  server CPU {cpu / max(1, reports) * 100_000:.1f} s per 100k reports"
                f" ({own / wall:.0%} + writer {writer / wall:.0%} of a core)"
            )


if __name__ == "__main__":
    main()
