"""Backups of the SQLite store, taken while the service writes (`dispatcher db backup PATH`).

SQLite's online backup API copies the database through a connection of its own, in one
step: that step reads under one read transaction, so in WAL mode the copy is the database
as of one commit, whatever the writer process commits meanwhile, and the writer is not
held up. The copy is written beside PATH and linked into place only once whole and
checked (`PRAGMA integrity_check`), so PATH is a good backup or absent; an existing PATH is
never overwritten. Blocking (file I/O): the service calls `backup` from a worker thread.
For PostgreSQL, `pg_dump -Fc` (see the README) does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

# What the summary counts: table -> how a person calls its rows.
COUNTED = {
    "reports": "report revisions",
    "incidents": "incidents",
    "alert_groups": "alert groups",
    "devices": "devices",
    "silences": "silences",
}


class BackupError(Exception):
    """The backup was not made; the message says why, for the operator."""


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int  # bytes
    revision: str | None  # the schema's Alembic revision
    counts: dict[str, int]  # table -> rows

    def describe(self) -> str:
        counts = ", ".join(f"{n} {COUNTED[t]}" for t, n in self.counts.items())
        return f"{self.path}: {self.size:,} bytes, schema {self.revision}; {counts}"


def sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise BackupError(
            "the store is not SQLite; back up PostgreSQL with pg_dump -Fc (see the README)"
        )
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("the store is an in-memory database; there is nothing to copy")
    return Path(parsed.database)


def backup_sqlite(url: str, dest: Path) -> Backup:
    """Copy the SQLite database at `url` to `dest` (which must not exist), consistently."""
    source = sqlite_path(url)
    if not source.exists():
        raise BackupError(f"{source} does not exist")
    if dest.exists():
        raise BackupError(f"{dest} exists; give a new path (a backup never overwrites)")
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # every page in one step: one read transaction, one commit's state
            (check,) = dst.execute("PRAGMA integrity_check").fetchone()
            if check != "ok":
                raise BackupError(f"the copy fails SQLite's integrity check: {check}")
            revision = dst.execute("SELECT version_num FROM alembic_version").fetchone()
            counts = {
                table: int(dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - names from COUNTED
                for table in COUNTED
            }
            # The copy keeps the source's WAL mode; fold it into the one file to be moved.
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"cannot copy {source}: {exc}") from exc
    finally:
        src.close()
    try:
        os.link(partial, dest)  # fails if dest appeared meanwhile: never overwrite
    except OSError as exc:
        raise BackupError(f"cannot write {dest}: {exc.strerror}") from exc
    finally:
        partial.unlink(missing_ok=True)
        for extra in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(f"{partial}{extra}").unlink()
    return Backup(dest, dest.stat().st_size, revision[0] if revision else None, counts)


async def backup(url: str, dest: Path) -> Backup:
    """`backup_sqlite` off the event loop."""
    return await asyncio.to_thread(backup_sqlite, url, dest)
