"""A backup taken while reports pour in is a consistent store the service starts on."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from dispatcher.store import db
from dispatcher.store.backup import BackupError, backup, backup_sqlite
from tests.support.harness import Keys, running, settings_for
from tests.support.waiting import until


def schema_head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def report(n: int) -> dict[str, Any]:
    return {
        "id": f"b-{n}",
        "source": "backup-test",
        "kind": "shelling",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "region": "SY0703",
        "casualties": {"injured": n % 7},
    }


async def test_a_backup_while_writing_restores_to_a_working_service(tmp_path: Path) -> None:
    keys = Keys()
    keys.add("spotter", "reports:write")
    settings = settings_for(tmp_path, keys)
    url = settings.storage.url
    copy = tmp_path / "backups" / "copy.db"
    copy.parent.mkdir()
    first = report(0)
    async with running(settings, keys) as svc:
        assert (await svc.post("/v1/reports", first, key="spotter"))[0] == 202
        for n in range(1, 20):
            assert (await svc.post("/v1/reports", report(n), key="spotter"))[0] == 202
        writing = True

        async def write() -> int:
            n = 20
            while writing:
                batch = [report(n + i) for i in range(10)]
                status, _ = await svc.post("/v1/reports", batch, key="spotter")
                assert status == 200
                n += 10
            return n

        writer = asyncio.create_task(write())
        store = svc.service.store
        await until(store.count_reports, lambda n: n >= 60, what="batches committed")
        made = await backup(url, copy)  # while the batches keep coming
        writing = False
        written = await writer
        total = await svc.service.store.count_reports()
    assert total == written
    copied = made.counts["reports"]
    assert 60 <= copied <= total, "the copy holds what was committed when it was taken"
    assert copied % 10 == 0, "whole batches only: one commit's state, never half of one"
    assert made.revision == schema_head()
    assert made.size == copy.stat().st_size > 0
    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert not list(copy.parent.glob(".*partial*")), "nothing left beside the copy"

    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "dispatcher.db").write_bytes(copy.read_bytes())
    again = settings_for(restored, keys)
    async with running(again, keys) as svc:
        assert await svc.service.store.count_reports() == copied
        status, body = await svc.post("/v1/reports", first, key="spotter")
        assert status == 200, "a report in the backup is known again: a retry counts once"
        assert body["status"] == "duplicate"


def test_a_backup_never_overwrites_and_says_why(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(BackupError, match="does not exist"):
        backup_sqlite(url, tmp_path / "b.db")
    (tmp_path / "none.db").touch()
    (tmp_path / "b.db").write_text("keep me")
    with pytest.raises(BackupError, match="exists; give a new path"):
        backup_sqlite(url, tmp_path / "b.db")
    assert (tmp_path / "b.db").read_text() == "keep me"
    with pytest.raises(BackupError, match="pg_dump -Fc"):
        backup_sqlite("postgresql+asyncpg://u@h/db", tmp_path / "c.db")


async def test_the_backup_command_prints_size_and_counts(tmp_path: Path) -> None:
    keys = Keys()
    keys.add("spotter", "reports:write")
    settings = settings_for(tmp_path, keys)
    async with running(settings, keys) as svc:
        for n in range(3):
            assert (await svc.post("/v1/reports", report(n), key="spotter"))[0] == 202
        env = {**os.environ, "DISPATCHER_STORAGE__URL": settings.storage.url}
        argv = [sys.executable, "-m", "dispatcher", "db", "backup", str(tmp_path / "b.db")]
        done = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, env=env, cwd=tmp_path,
            timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"backed up to {tmp_path / 'b.db'}: ")
        assert f"schema {schema_head()}; 3 report revisions, 3 incidents" in done.stdout
        again = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, env=env, cwd=tmp_path,
            timeout=60, check=False,
        )  # fmt: skip
        assert again.returncode == 1
        assert "exists; give a new path" in again.stderr
