"""Phones paired and shut out without a restart: keys in the database, pairing codes,
revocation, and the admin keys API, on the real server with the FCM emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.pairing import ALPHABET
from dispatcher.testing.clock import ManualClock
from dispatcher.testing.fcm_emulator import FcmEmulator
from tests.acceptance.test_whole_path import report
from tests.support.harness import TESTDATA, Keys, Running, fcm_push, running, settings_for
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(rf"^[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$")


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("desk", "admin")
    k.add("observatory", "reports:write")
    k.add("reader", "read")
    return k


async def pair(svc: Running, leader: str, name: str) -> dict[str, Any]:
    """Pair a phone for `leader` as an operator and the phone would; the phone's key is
    then usable as `name`."""
    status, made = await svc.post(f"/v1/leaders/{leader}/pairings", None, key="desk")
    assert status == 201, made
    status, got = await svc.post("/v1/pairings/redeem", {"code": made["code"]}, key=None)
    assert status == 201, got
    svc.keys.plain[name] = got["key"]
    assert isinstance(got, dict)
    return got


async def phone(svc: Running, emu: FcmEmulator, key: str) -> str:
    token = emu.issue_token("android")
    status, body = await svc.post(
        "/v1/devices", {"token": token, "platform": "android", "locale": "en"}, key=key
    )
    assert status == 201, body
    return token


def cli(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DISPATCHER_STORAGE__URL": db_url,
        "DISPATCHER_RULES__PATH": str(TESTDATA / "rules-e2e"),
    }
    return subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, "-m", "dispatcher", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
async def service(
    tmp_path: Path, db_url: str, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> AsyncIterator[Running]:
    settings = settings_for(
        tmp_path, keys, db_url=db_url, push=fcm_push(fcm_emulator, fcm_credentials)
    )
    async with running(settings, keys) as svc:
        yield svc


async def test_a_revoked_phone_key_is_refused_within_a_second_and_its_phones_stop(
    service: Running, fcm_emulator: FcmEmulator, db_url: str
) -> None:
    svc, emu = service, fcm_emulator
    taken = await pair(svc, "harim-lead-1", "taken")  # this phone is lost at a checkpoint
    await pair(svc, "idleb-lead-1", "kept")
    taken_token = await phone(svc, emu, "taken")
    kept_token = await phone(svc, emu, "kept")
    # A second phone of the same leader, with a key of its own, keeps working too.
    await pair(svc, "harim-lead-1", "harim-spare")
    spare_token = await phone(svc, emu, "harim-spare")

    assert (await svc.post("/v1/reports", report("k1", killed=1), key="observatory"))[0] == 202
    first = await emu.wait_for(3, within=10)
    assert {m.token for m in first} == {taken_token, kept_token, spare_token}

    # The operator revokes the key from the command line, beside the running service.
    done = cli("keys", "revoke", taken["key_id"], db_url=db_url)
    assert done.returncode == 0, done.stderr
    revoked_at = time.monotonic()
    assert f"revoked {taken['key_id']}" in done.stdout
    assert "1 phone(s) disabled" in done.stdout
    await until(
        lambda: svc.get("/v1/me", key="taken"),
        lambda answer: answer[0] == 401,
        within=1.0,
        every=0.02,
        what="401 for the revoked key",
    )
    assert time.monotonic() - revoked_at < 1.0
    # Nothing else is disturbed: the other keys still work.
    assert (await svc.get("/v1/me", key="kept"))[0] == 200
    assert (await svc.get("/v1/me", key="harim-spare"))[0] == 200
    status, _ = await svc.post(
        "/v1/devices", {"token": emu.issue_token(), "platform": "android"}, key="taken"
    )
    assert status == 401

    assert (await svc.post("/v1/reports", report("k2", killed=3), key="observatory"))[0] == 202
    second = (await emu.wait_for(5, within=10))[3:]
    assert {m.token for m in second} == {kept_token, spare_token}
    # Every push of that update is written and done with: none of them was for the lost phone.
    await until(
        svc.service.store.notification_counts, lambda c: not c.get("pending"),
        what="no push left to send",
    )  # fmt: skip
    assert [m.token for m in emu.received].count(taken_token) == 1


async def test_pushes_queued_for_a_phone_are_not_sent_once_its_key_is_revoked(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    clock = ManualClock(datetime.now(UTC))
    settings = settings_for(
        tmp_path, keys, push=fcm_push(fcm_emulator, fcm_credentials), rules={"watch": False}
    )
    async with running(settings, keys, clock=clock) as svc:
        got = await pair(svc, "harim-lead-1", "taken")
        token = await phone(svc, fcm_emulator, "taken")
        # FCM is busy: the first try fails, the next is due a minute later.
        fcm_emulator.fail_next(1, token=token, retry_after=60)
        status, posted = await svc.post("/v1/reports", report("q1"), key="observatory")
        assert status == 202
        clock.advance(timedelta(seconds=1))  # group_wait: the update is written and tried
        await until(
            svc.service.store.notification_counts, lambda c: c.get("pending", 0) == 1,
            what="the update waiting for its retry",
        )  # fmt: skip
        status, body = await svc.delete(f"/v1/admin/keys/{got['key_id']}", key="desk")
        assert status == 200, body
        assert (body["phones_disabled"], body["revoked_by"]) == (1, "API by key 'desk'")
        clock.advance(timedelta(minutes=2))
        await svc.service.pipeline.tick()  # the retry is due: it would be sent now
        assert "pending" not in await svc.service.store.notification_counts()
        said = []
        for group in posted["groups"]:
            status, listing = await svc.get(f"/v1/groups/{group}/deliveries", key="reader")
            assert status == 200, listing
            said += [(d["leader"], d["status"], d["last_error"]) for d in listing["deliveries"]]
        assert ("harim-lead-1", "failed", "key revoked") in said
        assert fcm_emulator.received == []
        assert (await svc.get("/v1/me", key="taken"))[0] == 401, "refused at once here"


async def test_pairing_codes_are_short_single_use_and_expire(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path
) -> None:
    clock = ManualClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    settings = settings_for(tmp_path, keys, server={"public_url": "https://dispatch.example.org/"})
    async with running(settings, keys, clock=clock) as svc:
        status, made = await svc.post("/v1/leaders/idleb-lead-2/pairings", None, key="desk")
        assert status == 201, made
        assert CODE.match(made["code"]), made["code"]
        plain = made["code"].replace("-", "")
        assert made["url"] == f"https://dispatch.example.org/app/#pair={plain}"
        assert made["expires_at"] == "2026-12-06T09:15:00+00:00"
        assert made["qr_svg"].startswith("<svg")
        assert "</svg>" in made["qr_svg"]
        assert made["leader"] == {
            "id": "idleb-lead-2", "name": made["leader"]["name"], "locale": "en",
            "team": "idleb-center", "team_name": made["leader"]["team_name"],
        }  # fmt: skip

        # Typed by hand: lower case, a space instead of the dash.
        typed = f"{plain[:4].lower()} {plain[4:]}"
        status, got = await svc.post(
            "/v1/pairings/redeem", {"code": typed, "name": "Abu Khaled's Samsung"}, key=None
        )
        assert status == 201, got
        assert got["key"].startswith("dk_")
        assert got["key_id"].startswith("key_")
        assert got["leader"]["id"] == "idleb-lead-2"
        svc.keys.plain["paired"] = got["key"]
        status, me = await svc.get("/v1/me", key="paired")
        assert status == 200, me
        assert me == {"leader": got["leader"], "key_id": got["key_id"],
                      "key_name": "Abu Khaled's Samsung"}  # fmt: skip
        # The key is a phone's: it registers phones for its leader and does nothing else.
        token = fcm_emulator.issue_token()
        status, body = await svc.post(
            "/v1/devices", {"token": token, "platform": "android"}, key="paired"
        )
        assert (status, body["device"]["leader"]) == (201, "idleb-lead-2")
        assert (await svc.post("/v1/reports", report("x"), key="paired"))[0] == 403

        # Once only.
        status, again = await svc.post("/v1/pairings/redeem", {"code": plain}, key=None)
        assert status == 404, again
        assert "ask for a new one" in again["detail"]

        # Fifteen minutes, not a second more.
        status, late = await svc.post("/v1/leaders/harim-lead-1/pairings", None, key="desk")
        clock.advance(timedelta(minutes=15))
        status, body = await svc.post("/v1/pairings/redeem", {"code": late["code"]}, key=None)
        assert status == 404, body
        status, longer = await svc.post(
            "/v1/leaders/harim-lead-1/pairings", {"minutes": 60}, key="desk"
        )
        assert longer["expires_at"] == "2026-12-06T10:15:00+00:00"
        clock.advance(timedelta(minutes=59))
        assert (await svc.post("/v1/pairings/redeem", {"code": longer["code"]}, key=None))[0] == 201

        status, body = await svc.post("/v1/leaders/nobody/pairings", None, key="desk")
        assert (status, body["detail"]) == (404, "no leader 'nobody' in the rules")
        assert (await svc.post("/v1/leaders/idleb-lead-2/pairings", None, key="paired"))[0] == 403


async def test_guessing_codes_is_refused_with_429(tmp_path: Path, keys: Keys) -> None:
    clock = ManualClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    async with running(settings_for(tmp_path, keys), keys, clock=clock) as svc:
        status, made = await svc.post("/v1/leaders/idleb-lead-1/pairings", None, key="desk")
        assert status == 201
        for n in range(5):
            status, _ = await svc.post(
                "/v1/pairings/redeem", {"code": f"2222-222{n + 2}"}, key=None
            )
            assert status == 404
        async with svc.http.post(
            svc.url + "/v1/pairings/redeem", json={"code": made["code"]}
        ) as resp:
            assert resp.status == 429, "even the right code, once this address guessed"
            assert resp.headers["Retry-After"] == "600"
            assert "too many wrong codes" in (await resp.json(content_type=None))["detail"]
        clock.advance(timedelta(minutes=4))
        status, body = await svc.post("/v1/pairings/redeem", {"code": made["code"]}, key=None)
        assert status == 429
        clock.advance(timedelta(minutes=6))
        status, body = await svc.post("/v1/pairings/redeem", {"code": made["code"]}, key=None)
        assert status == 201, body


async def test_the_admin_keys_api_never_shows_key_material(tmp_path: Path, keys: Keys) -> None:
    async with running(settings_for(tmp_path, keys), keys) as svc:
        status, made = await svc.post(
            "/v1/admin/keys", {"name": "spotter-7", "scopes": ["reports:write"]}, key="desk"
        )
        assert status == 201, made
        key = made["key"]
        svc.keys.plain["spotter"] = key
        assert (await svc.post("/v1/reports", report("s7"), key="spotter"))[0] == 202
        status, bad = await svc.post(
            "/v1/admin/keys", {"name": "p", "scopes": ["devices:write"]}, key="desk"
        )
        assert (status, bad["errors"][0]["field"]) == (422, "leader")

        status, listing = await svc.get("/v1/admin/keys", key="desk")
        assert status == 200
        text = str(listing)
        for secret in [key, *svc.keys.plain.values()]:
            assert secret not in text
        for entry in svc.keys.entries:
            assert entry.sha256 not in text
        assert "sha256" not in text
        by_name = {k["name"]: k for k in listing["keys"]}
        assert by_name["desk"]["source"] == "config"
        assert by_name["desk"]["id"] == "config:desk"
        assert by_name["spotter-7"] == {
            "id": made["id"], "name": "spotter-7", "scopes": ["reports:write"], "leader": None,
            "source": "database", "created_at": made["created_at"],
            "created_by": "API by key 'desk'", "last_used_at": None, "revoked_at": None,
            "revoked_by": None,
        }  # fmt: skip
        assert (await svc.get("/v1/admin/keys", key="reader"))[0] == 403

        status, body = await svc.delete("/v1/admin/keys/config:desk", key="desk")
        assert status == 409
        assert "config file" in body["detail"]
        assert (await svc.delete("/v1/admin/keys/key_000000000000", key="desk"))[0] == 404
        status, body = await svc.delete(f"/v1/admin/keys/{made['id']}", key="desk")
        assert status == 200
        assert (await svc.post("/v1/reports", report("s8"), key="spotter"))[0] == 401


async def test_last_use_is_recorded_off_the_request_path(tmp_path: Path, keys: Keys) -> None:
    from dispatcher.web.access import ACCESS, record_uses

    clock = ManualClock(datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    async with running(settings_for(tmp_path, keys), keys, clock=clock) as svc:
        got = await pair(svc, "idleb-lead-1", "paired")
        for _ in range(3):
            assert (await svc.get("/v1/me", key="paired"))[0] == 200
        listed = await svc.service.store.list_keys()
        assert [k.last_used_at for k in listed] == [None], "not written by the request"
        app = svc.app
        assert app is not None
        clock.advance(timedelta(minutes=1))
        await record_uses(app)
        listed = await svc.service.store.list_keys()
        assert [(k.id, k.last_used_at) for k in listed] == [(got["key_id"], clock())]
        assert app[ACCESS].config_last_used == {"config:desk": clock()}
