"""Fan-out to phones: device pushes per second from one process to the FCM emulator.

The emulator runs in a process of its own (`python -m dispatcher.testing.fcm_emulator
--quiet`), so that its work is not counted against the sender. Three figures:

1. the emulator's own capacity: wrk posting one valid message over and over (2 threads,
   64 connections), which a sender must stay below for the emulator not to be the limit;
2. firebase-admin's own `send_each_for_multicast_async`, 500 tokens a call (the baseline
   the issue names);
3. our FcmChannel.send (firebase-admin's encoding, our own pooled aiohttp sender), 500
   pushes a call, as Delivery uses it, and all pushes in one call;
4. the whole service (`dispatcher serve`, SQLite, its own process): the duty officer of the
   shipped rules has `--pushes` phones registered, and one report with 12 killed (an
   immediate route) is posted; from the POST until the service counts every push sent,
   which takes in writing the update and its outbox rows, claiming, sending and recording.

    .venv/bin/python bench/fanout.py [--pushes 4000] [--tokens 2000] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import firebase_admin
import service
from firebase_admin import credentials, messaging
from service import cpu_seconds

from dispatcher.notify.base import Push
from dispatcher.notify.fcm import FcmChannel


def start_emulator(tmp: Path, tokens: int) -> tuple[subprocess.Popen[str], str, Path, list[str]]:
    creds = tmp / "sa.json"
    proc = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "dispatcher.testing.fcm_emulator", "--port", "0", "--quiet",
         "--credentials", str(creds), "--tokens", str(tokens)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    m = re.match(r"FCM emulator on (\S+)", proc.stdout.readline())
    if not m:
        proc.kill()
        raise SystemExit("the emulator did not start")
    proc.stdout.readline()  # "service account written to ..."
    issued = [proc.stdout.readline().split("token: ", 1)[1].strip() for _ in range(tokens)]
    return proc, m.group(1), creds, issued


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def access_token(creds: Path) -> str:
    import google.auth.transport.requests
    from google.oauth2 import service_account

    scopes = ["https://www.googleapis.com/auth/firebase.messaging"]
    cred = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(creds), scopes=scopes
    )
    await asyncio.to_thread(cred.refresh, google.auth.transport.requests.Request())
    return str(cred.token)


def emulator_capacity(url: str, token: str, fcm_token: str, seconds: int) -> float | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    body = json.dumps({"message": {"token": fcm_token, "notification": {"title": "t",
                                   "body": "b"}, "data": {"group_id": "g"}}})  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body)}\n"
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    project = json.loads(Path(os.environ["FANOUT_CREDS"]).read_text())["project_id"]
    done = subprocess.run(  # noqa: S603
        [wrk, "-t2", "-c64", f"-d{seconds}s", "-s", f.name,
         f"{url}/v1/projects/{project}/messages:send"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    if "Non-2xx" in done.stdout:
        raise SystemExit(f"the emulator refused wrk's messages:\n{done.stdout}")
    m = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    return float(m.group(1)) if m else None


WRITER, PHONE = "bench-fanout-writer", "bench-fanout-phone"
OFFICER = "central-duty-officer"  # the shipped rules' immediate route alerts this leader
SENT = r'dispatcher_push_attempts_total\{channel="fcm",result="sent"\} (\S+)'


async def whole_service(args: argparse.Namespace, url: str, creds: Path, tokens: list[str],
                        emu_pid: int, tmp: Path) -> None:  # fmt: skip
    def key(name: str, scopes: list[str], leader: str | None = None) -> dict[str, object]:
        return {"name": name, "sha256": hashlib.sha256(name.encode()).hexdigest(),
                "scopes": scopes, "leader": leader}  # fmt: skip

    env = {
        "DISPATCHER_SERVER__PORT": "0",
        "DISPATCHER_STORAGE__URL": f"sqlite+aiosqlite:///{tmp / 'fanout.db'}",
        "DISPATCHER_RULES__PATH": str(service.ROOT / "rules"),
        "DISPATCHER_AUTH__KEYS": json.dumps([key(WRITER, ["reports:write", "read"]),
                                             key(PHONE, ["devices:write"], OFFICER)]),
        "DISPATCHER_PUSH__FCM__CREDENTIALS": str(creds),
        "DISPATCHER_PUSH__FCM__ENDPOINT": url,
        "DISPATCHER_PUSH__FCM__CONNECTIONS": str(args.connections),
    }  # fmt: skip
    proc, api = service.start(env, tmp / "server.log")
    try:
        await service.fan_out(
            api, service_pid=proc.pid, emulator_pid=emu_pid,
            devices=[{"token": t, "platform": "android", "locale": "en"}
                     for t in tokens[: args.pushes]],
            phone_key=PHONE, writer_key=WRITER, sent_metric=SENT, report_id="fanout-1",
            noun="phones", wait_at_most=120,
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def sdk_app(creds: Path, url: str) -> firebase_admin.App:
    """A firebase-admin app whose messaging service posts to the emulator. The SDK has no
    option for another endpoint; this sets the private send URL it builds at start."""
    cred = credentials.Certificate(str(creds))
    app = firebase_admin.initialize_app(cred, {"projectId": cred.project_id}, name="baseline")
    service = messaging._get_messaging_service(app)
    service._fcm_url = f"{url}/v1/projects/{cred.project_id}/messages:send"
    return app


async def channel_rows(
    args: argparse.Namespace, url: str, creds: Path, tokens: list[str], emu_pid: int
) -> None:
    token = await access_token(creds)
    capacity = await asyncio.to_thread(emulator_capacity, url, token, tokens[0], args.seconds)
    alone = f"{capacity:.0f} messages/s" if capacity else "not measured (no wrk)"
    print(f"emulator alone (wrk, one process): {alone}")

    channel = await FcmChannel.create(str(creds), endpoint=url, connections=args.connections)
    app = await asyncio.to_thread(sdk_app, creds, url)
    try:
        targets = [tokens[i % args.tokens] for i in range(args.pushes)]
        note = messaging.Notification(title="Idleb · new incidents: 3", body="killed: 2")

        async def sdk_multicast() -> int:
            sent = 0
            for start in range(0, len(targets), 500):
                batch = await messaging.send_each_for_multicast_async(
                        messaging.MulticastMessage(tokens=targets[start : start + 500],
                                                   notification=note, data={"g": "1"}),
                        app=app,
                    )  # fmt: skip
                sent += batch.success_count
            return sent

        pushes = [
                Push(ref=i, token=t, platform="android", title=note.title or "",
                     body=note.body or "", collapse_key="g", data={"g": "1"})
                for i, t in enumerate(targets)
            ]  # fmt: skip

        async def ours_by_500() -> int:
            sent = 0
            for start in range(0, len(pushes), 500):
                results = await channel.send(pushes[start : start + 500])
                sent += sum(1 for r in results if r.ok)
            return sent

        async def ours_at_once() -> int:
            return sum(1 for r in await channel.send(pushes) if r.ok)

        await channel.send([Push(ref=0, token=tokens[0], platform="android",
                                     title="warm", body="up", collapse_key="g")])  # fmt: skip
        jobs = (("firebase-admin send_each_for_multicast_async", sdk_multicast),
                    ("FcmChannel.send, 500 a call", ours_by_500),
                    ("FcmChannel.send, all in one call", ours_at_once))  # fmt: skip
        for label, job in jobs:
            c0, e0, t0 = own_cpu(), cpu_seconds(emu_pid), time.perf_counter()
            sent = await job()
            wall = time.perf_counter() - t0
            print(f"{label}: {sent} of {len(targets)} sent in {wall:.2f} s = "
                      f"{sent / wall:.0f} pushes/s; sender CPU {(own_cpu() - c0) / wall:.0%},"
                      f" emulator CPU {(cpu_seconds(emu_pid) - e0) / wall:.0%}")  # fmt: skip
    finally:
        await channel.close()
        await asyncio.to_thread(firebase_admin.delete_app, app)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        emu, url, creds, tokens = start_emulator(Path(tmp_name), max(args.tokens, args.pushes))
        os.environ["FANOUT_CREDS"] = str(creds)
        try:
            if not args.service_only:
                await channel_rows(args, url, creds, tokens, emu.pid)
            await whole_service(args, url, creds, tokens, emu.pid, Path(tmp_name))
        finally:
            emu.terminate()
            emu.wait(timeout=10)


def main() -> None:
    # firebase-admin 7.7 deprecates `tokens` for Firebase installation ids; phones hand us
    # registration tokens, which FCM v1 still takes.
    warnings.simplefilter("ignore", DeprecationWarning)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pushes", type=int, default=4000)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=5, help="of wrk against the emulator")
    ap.add_argument("--connections", type=int, default=64, help="of our sender")
    ap.add_argument("--service-only", action="store_true", help="only the whole service's row")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
