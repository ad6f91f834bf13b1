"""What operators and phones manage: leaders' devices, silences, the history of rule sets,
API keys and pairing codes (their SQL is `store/access.py`), and the service's own keys
(the VAPID key pair Web Push subscriptions are bound to).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    Connection,
    null,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from dispatcher.silence import MATCHERS, Silence
from dispatcher.store import access, dbapi
from dispatcher.store.access import KeyRow, Pairing, Revoked
from dispatcher.store.mappers import _aware, _json_object, _silence_from_row
from dispatcher.store.rows import (
    DeviceRow,
)
from dispatcher.store.submit import Room
from dispatcher.store.tables import (
    alert_groups,
    devices,
    rule_files,
    rule_sets,
    service_keys,
    silences,
)


class AdminRoom(Room):
    """Devices, silences, rule sets and keys: the `DeviceStore`, `SilenceStore`,
    `RuleSetStore` and `KeyStore` protocols."""

    async def record_rule_set(
        self,
        *,
        version: str,
        sha256: str,
        applied_at: datetime,
        how: str,
        files: Mapping[str, str] | None = None,
    ) -> None:
        """Note a rule set applied; `files` (path in the rules folder -> text) keeps what it
        said, each text once however many versions share it, for the desk's diff."""
        row = {"version": version, "sha256": sha256, "applied_at": applied_at, "how": how[:200]}
        await self._write(partial(_record_rule_set, row=row, files=dict(files or {})))

    async def rule_set_history(self, limit: int = 10) -> list[dict[str, Any]]:
        """The rule sets applied most recently, newest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(rule_sets).order_by(rule_sets.c.id.desc()).limit(limit)
            )
            return [
                {
                    "version": r.version,
                    "applied_at": r.applied_at.isoformat(),
                    "how": r.how,
                    "files_kept": bool(r.files),
                }
                for r in rows
            ]

    async def rule_set_files(self, version: str) -> dict[str, str] | None:
        """The files of a rule set version as applied (newest record of it), or None when
        they were not kept (applied before they were)."""

        def read(conn: Connection) -> dict[str, str] | None:
            row = conn.execute(
                select(rule_sets.c.files)
                .where(rule_sets.c.version == version, rule_sets.c.files.is_not(None))
                .order_by(rule_sets.c.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            names: dict[str, str] = _json_object(row.files)
            texts = dict(
                conn.execute(
                    select(rule_files.c.sha256, rule_files.c.text).where(
                        rule_files.c.sha256.in_(sorted(set(names.values())))
                    )
                ).all()
            )
            if not set(names.values()) <= set(texts):
                return None
            return {path: texts[sha] for path, sha in names.items()}

        return await self._read(read)

    async def add_silence(self, silence: Silence, *, key_name: str) -> None:
        await self._write(partial(_add, silence=silence, key_name=key_name))

    async def current_silences(self, *, ending_after: datetime) -> list[Silence]:
        """Silences that end after `ending_after` (active and pending ones, for now)."""
        return await self._read(lambda conn: _current_silences(conn, ending_after))

    async def expire_silence(self, silence_id: str, *, now: datetime) -> Silence | None:
        return await self._write(partial(_expire, silence_id=silence_id, now=now))

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
        """Register a token (or a Web Push endpoint with its keys) for a leader; a token
        seen before moves to this leader (shared phones change hands). `key_id` is the
        database key that registered it (revoking the key disables the phone). Returns the
        device and whether it is new."""

        return await self._write(
            partial(
                _register,
                leader_id=leader_id,
                token=token,
                platform=platform,
                locale=locale,
                now=now,
                key_id=key_id,
                p256dh=p256dh,
                auth=auth,
            )
        )

    async def keep_service_key(self, name: str, value: str, *, now: datetime) -> str:
        """The service key stored under `name`; `value` is stored first if there is none.
        A key once stored is never replaced: what was made with it (Web Push subscriptions
        bound to the VAPID key) would stop working."""
        try:
            return await self._write(partial(_keep_service_key, name=name, value=value, now=now))
        except IntegrityError:
            # Another instance stored its own at the same moment: use that one.
            return await self._write(partial(_keep_service_key, name=name, value=value, now=now))

    async def remove_device(
        self, *, leader_id: str, token: str, now: datetime, reason: str
    ) -> bool:
        """Stop pushing to a leader's token; the row is kept (disabled) for the record."""

        return await self._write(
            partial(_remove, leader_id=leader_id, token=token, now=now, reason=reason)
        )

    async def active_devices(self, leader_ids: Sequence[str]) -> list[DeviceRow]:
        if not leader_ids:
            return []
        return await self._read(lambda conn: _active_devices(conn, leader_ids))

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
        return await self._write(
            partial(
                access.add_key, key_id=access.new_id("key"), name=name, sha256=sha256,
                scopes=list(scopes), leader_id=leader_id, now=now, created_by=created_by,
            )
        )  # fmt: skip

    async def key_by_hash(self, sha256: str) -> KeyRow | None:
        """The stored key with this SHA-256 (revoked or not), or None."""
        return await self._read(partial(access.key_by_hash, sha256=sha256))

    async def list_keys(self) -> list[KeyRow]:
        return await self._read(access.list_keys)

    async def revoke_key(self, key_id: str, *, now: datetime, by: str) -> Revoked | None:
        """Revoke a key: its phones are disabled and their pending pushes not sent."""
        return await self._write(partial(access.revoke_key, key_id=key_id, now=now, by=by))

    async def touch_keys(self, used: dict[str, datetime]) -> None:
        if used:
            await self._write(partial(access.touch_keys, used=dict(used)))

    async def add_pairing(
        self, *, sha256: str, leader_id: str, now: datetime, expires_at: datetime, created_by: str
    ) -> Pairing:
        return await self._write(
            partial(
                access.add_pairing, pairing_id=access.new_id("pair"), sha256=sha256,
                leader_id=leader_id, now=now, expires_at=expires_at, created_by=created_by,
            )
        )  # fmt: skip

    async def redeem_pairing(
        self, *, sha256: str, now: datetime, key_sha256: str, name: str | None
    ) -> tuple[Pairing, KeyRow] | None:
        """Use a pairing code once and make the phone's key; None for a code that is
        unknown, used or expired."""
        return await self._write(
            partial(
                access.redeem, sha256=sha256, now=now, key_id=access.new_id("key"),
                key_sha256=key_sha256, name=name,
            )
        )  # fmt: skip


ACTIVE_DEVICES = (
    "SELECT id, leader_id, token, platform, locale, created_at, updated_at FROM devices "
    "WHERE leader_id IN"
)


def _current_silences(conn: Connection, ending_after: datetime) -> list[Silence]:
    rows = conn.execute(
        select(silences)
        .where(silences.c.ends_at > ending_after)
        .order_by(silences.c.starts_at, silences.c.id)
    )
    return [_silence_from_row(r) for r in rows]


def _active_devices(conn: Connection, leader_ids: Sequence[str]) -> list[DeviceRow]:
    """The phones of these leaders that are not disabled. Plain SQL: a fan-out reads
    thousands, and Core's row processing (two times a row) cost a fan-out dearly
    (docs/performance.md, "Figures behind the code")."""
    if not leader_ids:
        return []
    sql = dbapi.on(conn)
    marks = ", ".join(f":l{i}" for i in range(len(leader_ids)))
    rows = sql.rows(
        f"{ACTIVE_DEVICES} ({marks}) AND disabled_at IS NULL ORDER BY id",
        {f"l{i}": leader for i, leader in enumerate(leader_ids)},
    )
    return [
        DeviceRow(pk, leader, token, platform, locale, _aware(created), _aware(updated))
        for pk, leader, token, platform, locale, created, updated in rows
    ]


def _add(conn: Connection, *, silence: Silence, key_name: str) -> None:
    conn.execute(
        silences.insert().values(
            id=silence.id,
            matchers={name: sorted(getattr(silence, name)) for name in MATCHERS},
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            author=silence.author,
            reason=silence.reason,
            created_at=silence.created_at,
            created_by_key=key_name,
        )
    )


def _expire(conn: Connection, *, silence_id: str, now: datetime) -> Silence | None:
    row = conn.execute(select(silences).where(silences.c.id == silence_id)).first()
    if row is None:
        return None
    if row.ends_at > now:
        conn.execute(update(silences).where(silences.c.id == silence_id).values(ends_at=now))
        # Groups this silence was holding (until its old end) are told now.
        conn.execute(
            update(alert_groups)
            .where(
                alert_groups.c.closed_at.is_(None),
                alert_groups.c.next_flush_at == row.ends_at,
            )
            .values(next_flush_at=now)
        )
        row = conn.execute(select(silences).where(silences.c.id == silence_id)).one()
    return _silence_from_row(row)


def _register(
    conn: Connection,
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
    row = conn.execute(select(devices).where(devices.c.token == token)).first()
    if row is None:
        result = conn.execute(
            devices.insert().values(
                leader_id=leader_id,
                token=token,
                platform=platform,
                locale=locale,
                created_at=now,
                updated_at=now,
                key_id=key_id,
                p256dh=p256dh,
                auth=auth,
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        device = DeviceRow(int(pk[0]), leader_id, token, platform, locale, now, now, p256dh, auth)
        return device, True
    conn.execute(
        update(devices)
        .where(devices.c.id == row.id)
        .values(
            leader_id=leader_id,
            platform=platform,
            locale=locale,
            updated_at=now,
            disabled_at=None,
            disabled_reason=None,
            key_id=key_id,
            p256dh=p256dh,
            auth=auth,
        )
    )
    device = DeviceRow(row.id, leader_id, token, platform, locale, row.created_at, now, p256dh,
                       auth)  # fmt: skip
    return device, False


def _keep_service_key(conn: Connection, *, name: str, value: str, now: datetime) -> str:
    stored = conn.execute(
        select(service_keys.c.value).where(service_keys.c.name == name)
    ).scalar_one_or_none()
    if stored is not None:
        return str(stored)
    conn.execute(service_keys.insert().values(name=name, value=value, created_at=now))
    return value


def _remove(conn: Connection, *, leader_id: str, token: str, now: datetime, reason: str) -> bool:
    result = conn.execute(
        update(devices)
        .where(
            devices.c.token == token,
            devices.c.leader_id == leader_id,
            devices.c.disabled_at.is_(None),
        )
        .values(disabled_at=now, disabled_reason=reason)
    )
    return result.rowcount == 1


def _record_rule_set(conn: Connection, *, row: dict[str, Any], files: dict[str, str]) -> None:
    names: dict[str, str] = {}
    for path, content in sorted(files.items()):
        sha = hashlib.sha256(content.encode()).hexdigest()
        names[path] = sha
        held = conn.execute(select(rule_files.c.sha256).where(rule_files.c.sha256 == sha))
        if held.first() is None:
            conn.execute(rule_files.insert().values(sha256=sha, text=content))
    # SQL NULL when none were kept (a JSON column would store None as the JSON null).
    conn.execute(rule_sets.insert().values(**row, files=names or null()))
