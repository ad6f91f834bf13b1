"""One contract for the admin rooms, kept by the in-memory store, SQLite and PostgreSQL:
devices, silences, the rule-set history and the service's own keys behave alike whichever
stands behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.silence import Silence
from tests.contract.conftest import Rooms

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
TOKEN = "tok-" + "a" * 40
OTHER = "tok-" + "b" * 40
S = timedelta(seconds=1)


async def test_a_phone_registers_once_and_moves_with_its_token(rooms: Rooms) -> None:
    first, created = await rooms.register_device(
        leader_id="a", token=TOKEN, platform="android", locale="ar", now=T0
    )
    assert created is True
    assert (first.leader_id, first.platform, first.locale) == ("a", "android", "ar")
    later = T0 + timedelta(hours=1)
    again, created = await rooms.register_device(
        leader_id="b", token=TOKEN, platform="ios", locale="en", now=later
    )
    assert created is False
    assert again.id == first.id
    assert (again.leader_id, again.platform, again.locale) == ("b", "ios", "en")
    assert again.created_at == T0
    assert again.updated_at == later
    assert [d.id for d in await rooms.active_devices(["b"])] == [first.id]
    assert await rooms.active_devices(["a"]) == []
    browser, created = await rooms.register_device(
        leader_id="b", token="https://push.example/sub/" + "c" * 20, platform="web",
        locale="en", now=later, p256dh="B" * 87, auth="A" * 22,
    )  # fmt: skip
    assert created is True
    assert (browser.p256dh, browser.auth) == ("B" * 87, "A" * 22)


async def test_a_removed_phone_is_not_pushed_to_until_it_registers_again(
    rooms: Rooms,
) -> None:
    phone, _ = await rooms.register_device(
        leader_id="a", token=TOKEN, platform="android", locale="ar", now=T0
    )
    await rooms.register_device(leader_id="a", token=OTHER, platform="ios", locale="en", now=T0)
    gone = dict(leader_id="a", token=TOKEN, now=T0, reason="signed out")
    assert await rooms.remove_device(**gone) is True  # type: ignore[arg-type]
    assert await rooms.remove_device(**gone) is False, "already signed out"  # type: ignore[arg-type]
    assert await rooms.remove_device(leader_id="b", token=OTHER, now=T0, reason="x") is False
    assert [d.token for d in await rooms.active_devices(["a"])] == [OTHER]
    back, created = await rooms.register_device(
        leader_id="a", token=TOKEN, platform="android", locale="ar", now=T0
    )
    assert (back.id, created) == (phone.id, False)
    assert sorted(d.token for d in await rooms.active_devices(["a"])) == [TOKEN, OTHER]


def silence(sid: str, starts: timedelta, ends: timedelta) -> Silence:
    return Silence(
        id=sid, regions=frozenset({"SY07"}), receivers=frozenset(), routes=frozenset(),
        kinds=frozenset({"airstrike"}), starts_at=T0 + starts, ends_at=T0 + ends,
        author="op", reason="drill", created_at=T0,
    )  # fmt: skip


async def test_silences_are_listed_while_they_last_and_expire_at_once(rooms: Rooms) -> None:
    later = silence("s2", timedelta(hours=1), timedelta(hours=3))
    now_on = silence("s1", timedelta(0), timedelta(hours=2))
    over = silence("s0", -timedelta(hours=2), -timedelta(hours=1))
    for s in (later, now_on, over):
        await rooms.add_silence(s, key_name="admin")
    assert await rooms.current_silences(ending_after=T0) == [now_on, later]
    expired = await rooms.expire_silence("s1", now=T0 + timedelta(minutes=5))
    assert expired is not None
    assert expired.ends_at == T0 + timedelta(minutes=5)
    assert expired.regions == frozenset({"SY07"})
    assert await rooms.current_silences(ending_after=T0 + timedelta(minutes=5)) == [later]
    # Expiring an ended silence changes nothing; an unknown one is None.
    assert await rooms.expire_silence("s0", now=T0) == over
    assert await rooms.expire_silence("nope", now=T0) is None


async def test_rule_sets_are_remembered_newest_first(rooms: Rooms) -> None:
    for n in range(12):
        await rooms.record_rule_set(
            version=f"v{n}", sha256="0" * 64, applied_at=T0 + timedelta(minutes=n),
            how="reload " + "x" * 300,
        )  # fmt: skip
    history = await rooms.rule_set_history()
    assert [h["version"] for h in history] == [f"v{n}" for n in range(11, 1, -1)]
    assert history[0]["applied_at"] == (T0 + timedelta(minutes=11)).isoformat()
    assert len(history[0]["how"]) == 200
    assert [h["version"] for h in await rooms.rule_set_history(limit=2)] == ["v11", "v10"]
    assert history[0]["files_kept"] is False
    assert await rooms.rule_set_files("v11") is None
    await rooms.record_rule_set(version="v12", sha256="1" * 64, applied_at=T0, how="api",
                                files={"routes.yaml": "route: {}\n"})  # fmt: skip
    assert (await rooms.rule_set_history(limit=1))[0]["files_kept"] is True
    assert await rooms.rule_set_files("v12") == {"routes.yaml": "route: {}\n"}


async def test_rule_files_are_kept_once_and_given_back_by_version(rooms: Rooms) -> None:
    outline = '{"type": "FeatureCollection", "features": []}'
    first = {"routes.yaml": "route: 1\n", "boundaries/a.geojson": outline}
    second = {"routes.yaml": "route: 2\n", "boundaries/a.geojson": outline}
    await rooms.record_rule_set(version="v1", sha256="1" * 64, applied_at=T0, how="start-up",
                                files=first)  # fmt: skip
    await rooms.record_rule_set(version="v2", sha256="2" * 64, applied_at=T0 + S, how="edit",
                                files=second)  # fmt: skip
    await rooms.record_rule_set(version="v0", sha256="0" * 64, applied_at=T0 + 2 * S, how="x")
    assert await rooms.rule_set_files("v1") == first
    assert await rooms.rule_set_files("v2") == second
    assert await rooms.rule_set_files("v0") is None
    assert await rooms.rule_set_files("never") is None
    history = await rooms.rule_set_history()
    assert [(h["version"], h["files_kept"]) for h in history] == [
        ("v0", False),
        ("v2", True),
        ("v1", True),
    ]


async def test_a_service_key_once_kept_is_never_replaced(rooms: Rooms) -> None:
    assert await rooms.keep_service_key("vapid", "first", now=T0) == "first"
    assert await rooms.keep_service_key("vapid", "second", now=T0 + timedelta(seconds=1)) == "first"
    assert await rooms.keep_service_key("other", "x", now=T0) == "x"
