"""API keys and pairing codes in memory (`KeyStore`).

As `Store`: only digests are kept; revoking a key disables the phones it registered and
fails their pending pushes at once ("key revoked"); a pairing code is used once, before it
expires, and makes the phone's `devices:write` key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from dispatcher.store.access import KEY_REVOKED, KeyRow, Pairing, Revoked, new_id
from dispatcher.testing.memory.admin import Room
from dispatcher.testing.memory.tables import PairingRow


class MemoryKeys(Room):
    """`KeyStore` (store/ports.py) in memory."""

    async def add_key(
        self,
        *,
        name: str,
        sha256: str,
        scopes: Sequence[str],
        leader_id: str | None,
        now: datetime,
        created_by: str,
    ) -> KeyRow:
        return self._add_key(new_id("key"), name, sha256, scopes, leader_id, now, created_by)

    def _add_key(
        self,
        key_id: str,
        name: str,
        sha256: str,
        scopes: Sequence[str],
        leader_id: str | None,
        now: datetime,
        created_by: str,
    ) -> KeyRow:
        if any(digest == sha256 for _, digest in self.t.keys.values()):
            raise ValueError("a key with this hash exists")  # the table's unique index
        row = KeyRow(key_id, name[:100], tuple(scopes), leader_id, now, created_by[:200])
        self.t.keys[key_id] = (row, sha256)
        return row

    async def key_by_hash(self, sha256: str) -> KeyRow | None:
        return next((row for row, digest in self.t.keys.values() if digest == sha256), None)

    async def list_keys(self) -> list[KeyRow]:
        return sorted((row for row, _ in self.t.keys.values()), key=lambda k: (k.created_at, k.id))

    async def revoke_key(self, key_id: str, *, now: datetime, by: str) -> Revoked | None:
        held = self.t.keys.get(key_id)
        if held is None:
            return None
        row, digest = held
        already = row.revoked_at is not None
        if not already:
            row = replace(row, revoked_at=now, revoked_by=by[:200])
            self.t.keys[key_id] = (row, digest)
        phones = 0
        of_key = set()
        for device in self.t.devices.values():
            if device.key_id != key_id:
                continue
            of_key.add(device.row.id)
            if device.disabled_at is None:
                device.disabled_at, device.disabled_reason = now, KEY_REVOKED
                phones += 1
        pushes = 0
        for push in self.t.pushes.values():
            if push.status == "pending" and push.device_id in of_key:
                push.status, push.last_error = "failed", KEY_REVOKED
                push.claimed_until = push.next_attempt_at = None
                pushes += 1
        return Revoked(row, phones, pushes, already)

    async def touch_keys(self, used: dict[str, datetime]) -> None:
        for key_id, at in used.items():
            held = self.t.keys.get(key_id)
            if held is not None and (held[0].last_used_at is None or held[0].last_used_at < at):
                self.t.keys[key_id] = (replace(held[0], last_used_at=at), held[1])

    async def add_pairing(
        self, *, sha256: str, leader_id: str, now: datetime, expires_at: datetime, created_by: str
    ) -> Pairing:
        pairing = Pairing(new_id("pair"), leader_id, now, created_by[:200], expires_at)
        self.t.pairings[sha256] = PairingRow(pairing, sha256)
        return pairing

    async def redeem_pairing(
        self, *, sha256: str, now: datetime, key_sha256: str, name: str | None
    ) -> tuple[Pairing, KeyRow] | None:
        held = self.t.pairings.get(sha256)
        if held is None or held.row.used_at is not None or held.row.expires_at <= now:
            return None
        leader_id = held.row.leader_id
        key = self._add_key(
            new_id("key"), name or f"phone of {leader_id} ({now.date().isoformat()})",
            key_sha256, ["devices:write"], leader_id, now, f"pairing {held.row.id}",
        )  # fmt: skip
        held.row = replace(held.row, used_at=now, key_id=key.id)
        return held.row, key
