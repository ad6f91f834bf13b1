"""The admin rooms of the store in memory: devices, silences and rule-set history kept in
dictionaries, for tests that need these rooms but not a database.

It keeps the same contract as `Store` (tests/contract/ runs one suite against this, SQLite
and PostgreSQL): a token seen again moves to its new leader and is enabled again, a removed
phone is kept disabled, silences come back in start order, rule sets newest first. What a
database adds beyond the room (expiring a silence wakes the groups it held) is not here.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dispatcher.silence import Silence
from dispatcher.store.rows import DeviceRow


@dataclass
class _Device:
    row: DeviceRow
    key_id: str | None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


class MemoryAdmin:
    """`DeviceStore`, `SilenceStore` and `RuleSetStore` (store/ports.py) in memory."""

    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}  # by token
        self._ids = itertools.count(1)
        self._silences: dict[str, Silence] = {}
        self._rule_sets: list[dict[str, Any]] = []
        self._files: dict[str, dict[str, str]] = {}

    # --- devices --------------------------------------------------------------------------

    async def register_device(
        self,
        *,
        leader_id: str,
        token: str,
        platform: str,
        locale: str,
        now: datetime,
        key_id: str | None = None,
        p256dh: str | None = None,
        auth: str | None = None,
    ) -> tuple[DeviceRow, bool]:
        known = self._devices.get(token)
        if known is None:
            row = DeviceRow(
                next(self._ids), leader_id, token, platform, locale, now, now, p256dh, auth
            )
            self._devices[token] = _Device(row, key_id)
            return row, True
        row = replace(
            known.row, leader_id=leader_id, platform=platform, locale=locale, updated_at=now,
            p256dh=p256dh, auth=auth,
        )  # fmt: skip
        self._devices[token] = _Device(row, key_id)
        return row, False

    async def remove_device(
        self, *, leader_id: str, token: str, now: datetime, reason: str
    ) -> bool:
        known = self._devices.get(token)
        if known is None or known.row.leader_id != leader_id or known.disabled_at is not None:
            return False
        known.disabled_at, known.disabled_reason = now, reason
        return True

    async def active_devices(self, leader_ids: Sequence[str]) -> list[DeviceRow]:
        wanted = set(leader_ids)
        return sorted(
            (d.row for d in self._devices.values()
             if d.disabled_at is None and d.row.leader_id in wanted),
            key=lambda row: row.id,
        )  # fmt: skip

    # --- silences -------------------------------------------------------------------------

    async def add_silence(self, silence: Silence, *, key_name: str) -> None:
        if silence.id in self._silences:
            raise ValueError(f"a silence with id {silence.id!r} exists")
        self._silences[silence.id] = silence

    async def current_silences(self, *, ending_after: datetime) -> list[Silence]:
        return sorted(
            (s for s in self._silences.values() if s.ends_at > ending_after),
            key=lambda s: (s.starts_at, s.id),
        )

    async def expire_silence(self, silence_id: str, *, now: datetime) -> Silence | None:
        silence = self._silences.get(silence_id)
        if silence is None:
            return None
        if silence.ends_at > now:
            silence = self._silences[silence_id] = replace(silence, ends_at=now)
        return silence

    # --- rule sets ------------------------------------------------------------------------

    async def record_rule_set(
        self,
        *,
        version: str,
        sha256: str,
        applied_at: datetime,
        how: str,
        files: Mapping[str, str] | None = None,
    ) -> None:
        self._rule_sets.append(
            {"version": version, "applied_at": applied_at.isoformat(), "how": how[:200],
             "files_kept": bool(files)}
        )  # fmt: skip
        if files:
            self._files[version] = dict(files)

    async def rule_set_history(self, limit: int = 10) -> list[dict[str, Any]]:
        return list(reversed(self._rule_sets))[:limit]

    async def rule_set_files(self, version: str) -> dict[str, str] | None:
        files = self._files.get(version)
        return dict(files) if files is not None else None
