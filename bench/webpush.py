"""Web Push fan-out: encrypted pushes per second from one process to the Web Push emulator.

The emulator runs in a process of its own (`python -m dispatcher.testing.webpush_emulator
--quiet`), so that its work (verifying each VAPID JWT, decrypting each push as the browser
would) is not counted against the sender. Figures:

1. what one push costs the sender's CPU before it leaves: the payload JSON, and its
   aes128gcm encryption (a fresh P-256 key, an ECDH, HKDF, AES-GCM);
2. the HTTP side alone, the same encrypted pushes posted by our keep-alive client
   (notify/http1.py, as the channel does) and by aiohttp's client (a pool of as many
   keep-alive connections), in sender CPU per push;
3. WebPushChannel.send (encryption, one VAPID JWT per push service and hour, our keep-alive
   HTTP/1.1 client), 500 pushes a call as Delivery sends them, and all in one call;
4. the whole service (`dispatcher serve`, SQLite, its own process): the duty officer of the
   shipped rules has `--pushes` browsers subscribed, and one report with 12 killed (an
   immediate route) is posted; from the POST until the service counts every push sent.

    .venv/bin/python bench/webpush.py [--pushes 4000] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import service
from service import cpu_seconds

from dispatcher.notify.base import Push
from dispatcher.notify.http1 import Origin
from dispatcher.notify.webpush import (
    Vapid,
    WebPushChannel,
    encrypt,
    headers_for,
    new_vapid_pem,
    payload,
)

Post = Callable[[str, dict[str, str], bytes], Awaitable[bool]]
TITLE, BODY = "Idleb · new incidents: 3", "killed: 2 · injured: 7 · trapped: 3\nairstrike: 3"


def start_emulator(count: int) -> tuple[subprocess.Popen[str], str, list[dict[str, Any]]]:
    proc = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "dispatcher.testing.webpush_emulator", "--port", "0", "--quiet",
         "--subscriptions", str(count)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    m = re.match(r"Web Push emulator on (\S+)", proc.stdout.readline())
    if not m:
        proc.kill()
        raise SystemExit("the emulator did not start")
    subs = [json.loads(proc.stdout.readline().split("subscription: ", 1)[1]) for _ in range(count)]
    return proc, m.group(1), subs


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def push_for(ref: int, sub: dict[str, Any]) -> Push:
    group = "0f" * 16
    return Push(ref=ref, token=sub["endpoint"], platform="web", title=TITLE, body=BODY,
                collapse_key=group, priority="high", ttl=timedelta(minutes=10),
                data={"group_id": group, "seq": "1", "kind": "update", "incidents": "a" * 32,
                      "more_incidents": "0"},
                p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"])  # fmt: skip


def encryption_row(subs: list[dict[str, Any]]) -> None:
    pushes = [push_for(i, s) for i, s in enumerate(subs[:2000])]
    t0 = time.perf_counter()
    plains = [payload(p) for p in pushes]
    t1 = time.perf_counter()
    for p, plain in zip(pushes, plains, strict=True):
        encrypt(plain, p.p256dh, p.auth)
    t2 = time.perf_counter()
    n = len(pushes)
    print(f"per push, before it is sent: payload {(t1 - t0) / n * 1e6:.0f} µs, encryption "
          f"{(t2 - t1) / n * 1e6:.0f} µs ({len(plains[0])} octets of JSON)")  # fmt: skip


async def http_rows(args: argparse.Namespace, url: str, subs: list[dict[str, Any]]) -> None:
    vapid = Vapid(new_vapid_pem(), "mailto:bench@localhost")
    authorization = vapid.header(url, time.time())
    ready = []
    for i in range(args.pushes):
        p = push_for(i, subs[i % len(subs)])
        ready.append((urlsplit(p.token).path, headers_for(p, authorization),
                      encrypt(payload(p), p.p256dh, p.auth)))  # fmt: skip
    origin = Origin(url, timeout=10)

    async def ours(path: str, head: dict[str, str], body: bytes) -> bool:
        return (await origin.post(origin.head(path, head), body)).status == 201

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=args.connections)
    session = aiohttp.ClientSession(connector=connector)

    async def theirs(path: str, head: dict[str, str], body: bytes) -> bool:
        async with session.post(url + path, data=body, headers=head) as resp:
            await resp.read()
            return resp.status == 201

    try:
        for label, post in (("notify/http1.py", ours), ("aiohttp's client", theirs)):
            work = iter(ready)
            sent = 0

            async def lane(
                work: Iterator[tuple[str, dict[str, str], bytes]] = work, post: Post = post
            ) -> None:
                nonlocal sent
                for path, head, body in work:
                    ok = await post(path, head, body)
                    sent += ok

            c0, t0 = own_cpu(), time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(args.connections)))
            wall = time.perf_counter() - t0
            print(f"HTTP alone, {label}: {sent} of {len(ready)} in {wall:.2f} s; sender CPU "
                  f"{(own_cpu() - c0) / len(ready) * 1e6:.0f} µs a push")  # fmt: skip
    finally:
        origin.close()
        await session.close()


async def channel_rows(args: argparse.Namespace, url: str, subs: list[dict[str, Any]],
                       emu_pid: int) -> None:  # fmt: skip
    vapid = Vapid(new_vapid_pem(), "mailto:bench@localhost")
    channel = WebPushChannel(vapid, allowed_origins=[url], connections=args.connections)
    try:
        pushes = [push_for(i, subs[i % len(subs)]) for i in range(args.pushes)]
        await channel.send(pushes[:1])  # warm: a connection, the JWT

        async def by_500() -> int:
            sent = 0
            for start in range(0, len(pushes), 500):
                sent += sum(1 for r in await channel.send(pushes[start : start + 500]) if r.ok)
            return sent

        async def at_once() -> int:
            return sum(1 for r in await channel.send(pushes) if r.ok)

        for label, job in (("WebPushChannel.send, 500 a call", by_500),
                           ("WebPushChannel.send, all in one call", at_once)):  # fmt: skip
            c0, e0, t0 = own_cpu(), cpu_seconds(emu_pid), time.perf_counter()
            sent = await job()
            wall = time.perf_counter() - t0
            cpu = own_cpu() - c0
            print(f"{label}: {sent} of {len(pushes)} sent in {wall:.2f} s = {sent / wall:.0f} "
                  f"pushes/s; sender CPU {cpu / wall:.0%} ({cpu / len(pushes) * 1e6:.0f} µs a "
                  f"push), emulator CPU {(cpu_seconds(emu_pid) - e0) / wall:.0%}; VAPID JWTs "
                  f"signed: {vapid.signed}")  # fmt: skip
    finally:
        await channel.close()


WRITER, PHONE = "bench-webpush-writer", "bench-webpush-browser"
OFFICER = "central-duty-officer"  # the shipped rules' immediate route alerts this leader
SENT = r'dispatcher_push_attempts_total\{channel="webpush",result="sent"\} (\S+)'


async def whole_service(args: argparse.Namespace, url: str, subs: list[dict[str, Any]],
                        emu_pid: int, tmp: Path) -> None:  # fmt: skip
    def key(name: str, scopes: list[str], leader: str | None = None) -> dict[str, object]:
        return {"name": name, "sha256": hashlib.sha256(name.encode()).hexdigest(),
                "scopes": scopes, "leader": leader}  # fmt: skip

    env = {
        "DISPATCHER_SERVER__PORT": "0",
        "DISPATCHER_STORAGE__URL": f"sqlite+aiosqlite:///{tmp / 'webpush.db'}",
        "DISPATCHER_RULES__PATH": str(service.ROOT / "rules"),
        "DISPATCHER_AUTH__KEYS": json.dumps([key(WRITER, ["reports:write", "read"]),
                                             key(PHONE, ["devices:write"], OFFICER)]),
        "DISPATCHER_PUSH__WEBPUSH__ALLOWED_ORIGINS": json.dumps([url]),
        "DISPATCHER_PUSH__WEBPUSH__CONNECTIONS": str(args.connections),
    }  # fmt: skip
    proc, api = service.start(env, tmp / "server.log")
    try:
        await service.fan_out(
            api, service_pid=proc.pid, emulator_pid=emu_pid,
            devices=[{"platform": "web", "locale": "en", "subscription": s}
                     for s in subs[: args.pushes]],
            phone_key=PHONE, writer_key=WRITER, sent_metric=SENT, report_id="webpush-1",
            noun="browsers", wait_at_most=60,
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def run(args: argparse.Namespace) -> None:
    print(f"machine: {service.calibrate():.0f} ms for the calibration loop; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    emu, url, subs = start_emulator(args.pushes)
    try:
        encryption_row(subs)
        if not args.service_only:
            await http_rows(args, url, subs)
            await channel_rows(args, url, subs, emu.pid)
        with tempfile.TemporaryDirectory() as tmp:
            await whole_service(args, url, subs, emu.pid, Path(tmp))
    finally:
        emu.terminate()
        emu.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pushes", type=int, default=4000, help="and as many subscriptions")
    ap.add_argument("--connections", type=int, default=64, help="per push service")
    ap.add_argument("--service-only", action="store_true", help="only the whole service's row")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
