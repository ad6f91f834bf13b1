"""A PostgreSQL server of the test's own (initdb in a temporary folder, its own port), to
stop and start under load without disturbing the machine's server or anyone using it.

Needs PostgreSQL's server programs (Debian: /usr/lib/postgresql/<version>/bin). As root,
they run as the `postgres` user, since the server refuses to run as root.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path


def server_bin() -> Path | None:
    """The folder of initdb and pg_ctl, if this machine has them."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bin: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {out.decode()[-2000:]}")

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._run("pg_ctl", "-D", str(self.data / "db"), "-l", str(self.data / "log"),
                        "-w", "-t", "60", "-o", options, "start")  # fmt: skip

    async def stop(self, mode: str = "fast") -> None:
        """Stop the server: its connections are cut, new ones are refused."""
        await self._run("pg_ctl", "-D", str(self.data / "db"), "-m", mode, "-w", "stop")


@asynccontextmanager
async def pg_server() -> AsyncIterator[PgServer]:
    """A fresh server, running; stopped and removed afterwards whatever happened."""
    bin_dir = server_bin()
    assert bin_dir is not None, "no PostgreSQL server programs (pg_ctl, initdb)"
    data = Path(tempfile.mkdtemp(prefix="dispatcher-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(data, owner.pw_uid, owner.pw_gid)
    server = PgServer(bin_dir, data, _free_port())
    try:
        await server._run("initdb", "-D", str(data / "db"), "-A", "trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8")  # fmt: skip
        await server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):  # not running
            await server.stop("immediate")
        shutil.rmtree(data, ignore_errors=True)
