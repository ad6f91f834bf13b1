"""One contract for keys and pairing codes, kept by the in-memory store, SQLite and
PostgreSQL: kept as hashes, revoked at once (phones and their pushes with them), a code
redeemed once within its time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dispatcher.pairing import digest
from dispatcher.store.repo import OutboxItem
from dispatcher.web.auth import hash_key
from tests.contract.conftest import Rooms
from tests.contract.strikes import T0, report, save

S = timedelta(seconds=1)
TOKEN = "tok-" + "p" * 40


async def test_keys_are_kept_as_hashes_listed_and_touched(rooms: Rooms) -> None:
    made = await rooms.add_key(
        name="observatory", sha256=hash_key("k1"), scopes=["reports:write", "read"],
        leader_id=None, now=T0, created_by="CLI (root)",
    )  # fmt: skip
    assert made.id.startswith("key_")
    assert len(made.id) == 16
    found = await rooms.key_by_hash(hash_key("k1"))
    assert found == made
    assert await rooms.key_by_hash(hash_key("k2")) is None
    await rooms.touch_keys({made.id: T0 + 60 * S})
    await rooms.touch_keys({made.id: T0 + 30 * S})  # an older note never winds it back
    (listed,) = await rooms.list_keys()
    assert (listed.name, listed.scopes, listed.last_used_at) == (
        "observatory", ("reports:write", "read"), T0 + 60 * S,
    )  # fmt: skip


async def test_revoking_a_key_disables_its_phones_and_fails_their_pending_pushes(
    rooms: Rooms,
) -> None:
    taken = await rooms.add_key(
        name="taken", sha256=hash_key("t"), scopes=["devices:write"], leader_id="b", now=T0,
        created_by="test",
    )  # fmt: skip
    kept = await rooms.add_key(
        name="kept", sha256=hash_key("k"), scopes=["devices:write"], leader_id="b", now=T0,
        created_by="test",
    )  # fmt: skip
    lost, _ = await rooms.register_device(
        leader_id="b", token=TOKEN, platform="android", locale="ar", now=T0, key_id=taken.id
    )
    other, _ = await rooms.register_device(
        leader_id="b", token=TOKEN + "x", platform="android", locale="ar", now=T0,
        key_id=kept.id,
    )  # fmt: skip
    await save(rooms, report())
    (group,) = await rooms.due_groups(T0 + 30 * S)
    items = [OutboxItem("b", d.id, "fcm", "t", "b", {}, group.id, "normal") for d in (lost, other)]
    await rooms.record_update(group, now=T0 + 30 * S, summary={}, outbox=items, rules_version="1")

    revoked = await rooms.revoke_key(taken.id, now=T0 + 31 * S, by="CLI (root)")
    assert revoked is not None
    assert (revoked.phones, revoked.pushes, revoked.already) == (1, 1, False)
    assert (revoked.key.revoked_at, revoked.key.revoked_by) == (T0 + 31 * S, "CLI (root)")
    assert [d.id for d in await rooms.active_devices(["b"])] == [other.id]
    (due,) = await rooms.claim_pushes(T0 + 31 * S, lease=60 * S)
    assert due.device_id == other.id
    rows = {d.device_id: (d.status, d.last_error) for d in await rooms.deliveries(group.id)}
    assert rows[lost.id] == ("failed", "key revoked")
    again = await rooms.revoke_key(taken.id, now=T0 + 40 * S, by="x")
    assert again is not None
    assert again.already
    assert again.key.revoked_by == "CLI (root)"
    assert await rooms.revoke_key("key_000000000000", now=T0, by="x") is None


async def test_pushes_written_from_a_read_made_before_the_revocation_are_not_sent(
    rooms: Rooms,
) -> None:
    taken = await rooms.add_key(
        name="taken", sha256=hash_key("t"), scopes=["devices:write"], leader_id="b", now=T0,
        created_by="test",
    )  # fmt: skip
    lost, _ = await rooms.register_device(
        leader_id="b", token=TOKEN, platform="android", locale="ar", now=T0, key_id=taken.id
    )
    await save(rooms, report())
    (group,) = await rooms.due_groups(T0 + 30 * S)
    # A flush read the phones; the key is revoked; then the flush writes its pushes.
    await rooms.revoke_key(taken.id, now=T0 + 30 * S, by="test")
    item = OutboxItem("b", lost.id, "fcm", "t", "b", {}, group.id, "normal")
    claimed = await rooms.record_update_and_claim(
        group, now=T0 + 30 * S, summary={}, outbox=[item], rules_version="1", lease=60 * S
    )
    assert claimed == [], "an immediate route's own claim leaves it out"
    assert await rooms.claim_pushes(T0 + 91 * S, lease=60 * S) == []
    (row,) = await rooms.deliveries(group.id)
    assert (row.status, row.last_error) == ("failed", "key revoked")


async def test_a_pairing_code_is_redeemed_once_within_its_time(rooms: Rooms) -> None:
    pairing = await rooms.add_pairing(
        sha256=digest("ABCD2345"), leader_id="idleb-lead-1", now=T0,
        expires_at=T0 + 15 * 60 * S, created_by="CLI (root)",
    )  # fmt: skip
    # Two phones race with one code: one wins.
    results = await asyncio.gather(
        *(
            rooms.redeem_pairing(
                sha256=digest("ABCD2345"), now=T0 + 60 * S, key_sha256=hash_key(f"k{n}"),
                name=None,
            )
            for n in range(4)
        )
    )  # fmt: skip
    won = [r for r in results if r is not None]
    assert len(won) == 1
    used, key = won[0]
    assert (used.id, used.used_at, used.key_id) == (pairing.id, T0 + 60 * S, key.id)
    assert (key.name, key.scopes, key.leader_id, key.created_by) == (
        "phone of idleb-lead-1 (2026-11-24)", ("devices:write",), "idleb-lead-1",
        f"pairing {pairing.id}",
    )  # fmt: skip
    assert len(await rooms.list_keys()) == 1

    await rooms.add_pairing(
        sha256=digest("WXYZ7777"), leader_id="harim-lead-1", now=T0,
        expires_at=T0 + 15 * 60 * S, created_by="x",
    )  # fmt: skip
    late = await rooms.redeem_pairing(
        sha256=digest("WXYZ7777"), now=T0 + 15 * 60 * S, key_sha256=hash_key("z"), name="a"
    )
    assert late is None, "expired at its fifteenth minute"
    unknown = await rooms.redeem_pairing(
        sha256=digest("2222AAAA"), now=T0, key_sha256=hash_key("y"), name=None
    )
    assert unknown is None
