"""`dispatcher serve` as a real process: started, read until it listens, signalled, killed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    url: str
    banner: list[str]
    proc: asyncio.subprocess.Process
    spawned_at: float = 0.0  # the event loop's time when the process was started

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush; what a power cut or the OOM killer does."""
        self.proc.send_signal(signal.SIGKILL)


def serve_env(
    *, db_url: str, rules: Path, keys: list[dict[str, Any]], **more: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "DISPATCHER_SERVER__PORT": "0",
        "DISPATCHER_STORAGE__URL": db_url,
        "DISPATCHER_RULES__PATH": str(rules),
        "DISPATCHER_SCHEDULER__TICK": "100ms",
        "DISPATCHER_AUTH__KEYS": json.dumps(keys),
        **more,
    }
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    env.pop("DISPATCHER_PUSH__FCM__CREDENTIALS", None)
    return env


@asynccontextmanager
async def serving(env: dict[str, str], cwd: Path) -> AsyncIterator[Served]:
    spawned_at = asyncio.get_running_loop().time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatcher", "serve", "--config", str(ROOT / "config.yaml"),
        cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        banner: list[str] = []
        while not any(line.startswith("auth:") for line in banner):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            if not line:
                err = await proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"the service exited before it started: {err.decode()}")
            banner.append(line.decode().rstrip())
        url = re.match(r"dispatcher listening on (https?://127\.0\.0\.1:\d+)$", banner[0])
        assert url is not None, banner
        yield Served(url.group(1), banner, proc, spawned_at)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def holders(path: Path) -> list[int]:
    """The processes that have `path` open (Linux, from /proc)."""
    found = []
    target = path.resolve()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            for fd in fds:
                if Path(os.readlink(f"/proc/{pid}/fd/{fd}")) == target:
                    found.append(int(pid))
                    break
        except OSError:
            continue  # gone, or not ours to look at
    return found
