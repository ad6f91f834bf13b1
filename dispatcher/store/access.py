"""Who may call the service: API keys kept in the database, and the one-time codes that pair
a leader's phone. Queries only; the admin room (`store/admin.py`) runs them, the writes
through the one write path (`store/submit.py`).

Only SHA-256 digests are stored, of keys and of codes; nothing here ever sees either in the
clear. Revoking a key disables the phones it registered and stops their pending pushes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, or_, select, update

from dispatcher.store.tables import api_keys, devices, notifications, pairings

KEY_REVOKED = "key revoked"  # devices.disabled_reason and notifications.last_error


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A key as listings show it: never the key, never its hash."""

    id: str
    name: str
    scopes: tuple[str, ...]
    leader_id: str | None
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None


@dataclass(frozen=True, slots=True)
class Revoked:
    key: KeyRow
    phones: int  # phones disabled now
    pushes: int  # pending pushes to them that will not be sent
    already: bool  # it had been revoked before


@dataclass(frozen=True, slots=True)
class Pairing:
    id: str
    leader_id: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    used_at: datetime | None = None
    key_id: str | None = None


def _key(row: Any) -> KeyRow:
    return KeyRow(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes),
        leader_id=row.leader_id,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


def _pairing(row: Any) -> Pairing:
    return Pairing(
        row.id, row.leader_id, row.created_at, row.created_by, row.expires_at, row.used_at,
        row.key_id,
    )  # fmt: skip


# --- reads ------------------------------------------------------------------------------


def key_by_hash(conn: Connection, sha256: str) -> KeyRow | None:
    row = conn.execute(select(api_keys).where(api_keys.c.sha256 == sha256)).first()
    return _key(row) if row is not None else None


def list_keys(conn: Connection) -> list[KeyRow]:
    rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))
    return [_key(r) for r in rows]


# --- writes (picklable: the SQLite writer process runs them) -----------------------------


def add_key(
    conn: Connection,
    *,
    key_id: str,
    name: str,
    sha256: str,
    scopes: list[str],
    leader_id: str | None,
    now: datetime,
    created_by: str,
) -> KeyRow:
    conn.execute(
        api_keys.insert().values(
            id=key_id, name=name[:100], sha256=sha256, scopes=scopes, leader_id=leader_id,
            created_at=now, created_by=created_by[:200],
        )
    )  # fmt: skip
    return KeyRow(key_id, name[:100], tuple(scopes), leader_id, now, created_by[:200])


def revoke_key(conn: Connection, *, key_id: str, now: datetime, by: str) -> Revoked | None:
    """Revoke the key, disable the phones it registered, and fail their pending pushes
    ("key revoked"), in one transaction. None for an unknown key."""
    row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None:
        return None
    already = row.revoked_at is not None
    if not already:
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(revoked_at=now, revoked_by=by[:200])
        )
    phones = conn.execute(
        update(devices)
        .where(devices.c.key_id == key_id, devices.c.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason=KEY_REVOKED)
    ).rowcount
    of_key = select(devices.c.id).where(devices.c.key_id == key_id)
    pushes = conn.execute(
        update(notifications)
        .where(notifications.c.status == "pending", notifications.c.device_id.in_(of_key))
        .values(status="failed", last_error=KEY_REVOKED, claimed_until=None, next_attempt_at=None)
    ).rowcount
    revoked = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()
    return Revoked(_key(revoked), int(phones), int(pushes), already)


def stop_revoked(conn: Connection, *, due: Any) -> int:
    """Fail the pushes that `due` selects whose phone's key was revoked: rows written by a
    flush that read the phones just before the revocation. The delivery claim runs this."""
    revoked = exists().where(
        devices.c.id == notifications.c.device_id, devices.c.disabled_reason == KEY_REVOKED
    )
    return int(
        conn.execute(
            update(notifications)
            .where(due, notifications.c.device_id.is_not(None), revoked)
            .values(status="failed", last_error=KEY_REVOKED, claimed_until=None)
        ).rowcount
    )


def touch_keys(conn: Connection, *, used: dict[str, datetime]) -> None:
    """Record when keys were last used (the service writes this once a minute at most)."""
    for key_id, at in used.items():
        conn.execute(
            update(api_keys)
            .where(
                api_keys.c.id == key_id,
                or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < at),
            )
            .values(last_used_at=at)
        )


def add_pairing(
    conn: Connection,
    *,
    pairing_id: str,
    sha256: str,
    leader_id: str,
    now: datetime,
    expires_at: datetime,
    created_by: str,
) -> Pairing:
    conn.execute(
        pairings.insert().values(
            id=pairing_id, sha256=sha256, leader_id=leader_id, created_at=now,
            created_by=created_by[:200], expires_at=expires_at,
        )
    )  # fmt: skip
    return Pairing(pairing_id, leader_id, now, created_by[:200], expires_at)


def redeem(
    conn: Connection,
    *,
    sha256: str,
    now: datetime,
    key_id: str,
    key_sha256: str,
    name: str | None,
) -> tuple[Pairing, KeyRow] | None:
    """Use a pairing code once: a conditional update (two phones racing with one code, one
    wins), then the phone's `devices:write` key bound to the code's leader. None for a code
    that is unknown, used or expired."""
    row = conn.execute(select(pairings).where(pairings.c.sha256 == sha256)).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    won = conn.execute(
        update(pairings)
        .where(and_(pairings.c.id == row.id, pairings.c.used_at.is_(None)))
        .values(used_at=now, key_id=key_id)
    ).rowcount
    if won != 1:
        return None
    key = add_key(
        conn,
        key_id=key_id,
        name=name or f"phone of {row.leader_id} ({now.date().isoformat()})",
        sha256=key_sha256,
        scopes=["devices:write"],
        leader_id=row.leader_id,
        now=now,
        created_by=f"pairing {row.id}",
    )
    used = conn.execute(select(pairings).where(pairings.c.id == row.id)).one()
    return _pairing(used), key
