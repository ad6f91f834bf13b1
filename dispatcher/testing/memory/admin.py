"""The admin rooms in memory: devices, silences, rule-set history and the service's own
keys (`DeviceStore`, `SilenceStore`, `RuleSetStore`), kept in `Tables`.

As `Store`: a token seen again moves to its new leader and is enabled again, a removed
phone is kept disabled, silences come back in start order, rule sets newest first, and
expiring a silence wakes the groups it held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from dispatcher.incidents import MergeRule
from dispatcher.silence import Silence
from dispatcher.store.rows import DeviceRow
from dispatcher.testing.memory.tables import Device, Tables


class Room:
    """A room of the in-memory store: every room of one store shares its `Tables`."""

    def __init__(self, tables: Tables | None = None, *, merge: MergeRule | None = None) -> None:
        self.t = tables if tables is not None else Tables(merge or MergeRule())


class MemoryAdmin(Room):
    """`DeviceStore`, `SilenceStore` and `RuleSetStore` (store/ports.py) in memory."""

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
        known = self.t.devices.get(token)
        if known is None:
            row = DeviceRow(
                next(self.t.device_ids), leader_id, token, platform, locale, now, now, p256dh,
                auth,
            )  # fmt: skip
            self.t.devices[token] = Device(row, key_id)
            return row, True
        row = replace(
            known.row, leader_id=leader_id, platform=platform, locale=locale, updated_at=now,
            p256dh=p256dh, auth=auth,
        )  # fmt: skip
        self.t.devices[token] = Device(row, key_id)
        return row, False

    async def remove_device(
        self, *, leader_id: str, token: str, now: datetime, reason: str
    ) -> bool:
        known = self.t.devices.get(token)
        if known is None or known.row.leader_id != leader_id or known.disabled_at is not None:
            return False
        known.disabled_at, known.disabled_reason = now, reason
        return True

    async def active_devices(self, leader_ids: Sequence[str]) -> list[DeviceRow]:
        return active_devices(self.t, leader_ids)

    async def keep_service_key(self, name: str, value: str, *, now: datetime) -> str:
        return self.t.service_keys.setdefault(name, value)

    # --- silences -------------------------------------------------------------------------

    async def add_silence(self, silence: Silence, *, key_name: str) -> None:
        if silence.id in self.t.silences:
            raise ValueError(f"a silence with id {silence.id!r} exists")
        self.t.silences[silence.id] = silence

    async def current_silences(self, *, ending_after: datetime) -> list[Silence]:
        return current_silences(self.t, ending_after)

    async def expire_silence(self, silence_id: str, *, now: datetime) -> Silence | None:
        silence = self.t.silences.get(silence_id)
        if silence is None:
            return None
        if silence.ends_at > now:
            # Groups this silence was holding (until its old end) are told now.
            for gid, g in self.t.groups.items():
                if g.closed_at is None and g.next_flush_at == silence.ends_at:
                    self.t.groups[gid] = replace(g, next_flush_at=now)
            silence = self.t.silences[silence_id] = replace(silence, ends_at=now)
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
        self.t.rule_sets.append(
            {"version": version, "applied_at": applied_at.isoformat(), "how": how[:200],
             "files_kept": bool(files)}
        )  # fmt: skip
        if files:
            self.t.files[version] = dict(files)

    async def rule_set_history(self, limit: int = 10) -> list[dict[str, Any]]:
        return list(reversed(self.t.rule_sets))[:limit]

    async def rule_set_files(self, version: str) -> dict[str, str] | None:
        files = self.t.files.get(version)
        return dict(files) if files is not None else None


def active_devices(t: Tables, leader_ids: Sequence[str]) -> list[DeviceRow]:
    wanted = set(leader_ids)
    return sorted(
        (d.row for d in t.devices.values() if d.disabled_at is None and d.row.leader_id in wanted),
        key=lambda row: row.id,
    )


def current_silences(t: Tables, ending_after: datetime) -> list[Silence]:
    return sorted(
        (s for s in t.silences.values() if s.ends_at > ending_after),
        key=lambda s: (s.starts_at, s.id),
    )
