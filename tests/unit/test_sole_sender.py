"""The SQLite sender lock (store/sole_sender.py): one holder per database file at a time."""

from __future__ import annotations

from pathlib import Path

from dispatcher.store.sole_sender import SoleSender


async def test_one_service_at_a_time_holds_a_files_sender_lock(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dispatcher.db'}"
    first, second = SoleSender.for_url(url), SoleSender.for_url(url)
    assert first is not None
    assert second is not None
    assert first.path == tmp_path / "dispatcher.db-sender.lock"
    assert await first.take()
    assert await first.take(), "taking it again keeps it"
    assert not await second.take(), "held by another (here the same process, as flock counts)"
    first.release()
    assert await second.take(), "free once its holder lets go"
    assert second.held
    assert first.path.read_text().strip().isdigit(), "the holder's pid, for an operator"
    second.release()


def test_only_a_sqlite_file_has_one() -> None:
    assert SoleSender.for_url("postgresql+asyncpg://postgres@127.0.0.1/x") is None
    assert SoleSender.for_url("sqlite+aiosqlite:///:memory:") is None
    assert SoleSender.for_url("sqlite+aiosqlite://") is None
