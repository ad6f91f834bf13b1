"""SQLite: the one service sending from a database file, and the claims a dead one left.

On SQLite a claim on an outbox row is a lease only (store/claims.py signs claims on
PostgreSQL): the file cannot say whether the process that claimed a push is alive, so the
pushes a killed service had claimed waited out the two-minute lease. The service holds an
exclusive lock (flock) on a file beside the database, `<file>-sender.lock`, as long as it
runs; the kernel frees it when the process ends, however it ends (SIGKILL, the OOM killer).
A service that gets the lock at start-up knows that no other process is sending from the
file, so every claim in it was left by a dead one, and frees them at once (`Store.
free_dead_claims`). A second service on the same file (the README advises one per file, but
a second works) does not get the lock and leaves the claims to their lease, as before.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path

from sqlalchemy import make_url

log = logging.getLogger("dispatcher.store")


class SoleSender:
    """The lock on `<database>-sender.lock`: held from `take` until `release` or the end of
    the process."""

    def __init__(self, database: str | Path) -> None:
        self.path = Path(f"{database}-sender.lock")
        self._fd: int | None = None

    @classmethod
    def for_url(cls, url: str) -> SoleSender | None:
        """For a SQLite file; None for PostgreSQL or an in-memory database."""
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        return cls(parsed.database)

    @property
    def held(self) -> bool:
        return self._fd is not None

    async def take(self) -> bool:
        """Take the lock if no other process holds it; True if this one holds it now."""
        if self._fd is None:
            self._fd = await asyncio.to_thread(self._try)
        return self._fd is not None

    def _try(self) -> int | None:
        # Not inherited by child processes (Python's descriptors are not): the lock ends
        # with this process, not with the SQLite writer it starts.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        # Who holds it, for an operator who finds the file (the lock itself is the truth).
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor frees the lock
