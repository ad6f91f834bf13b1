"""An edit moves a route to another team: the new team is told everything, the old one
nothing more.

As in Alertmanager, where a receiver change makes a new group: the open group of the old
team closes without a word, and a new group for the new team takes over its reports, so
that its first update (after the route's group_wait) is the whole current state. The real
service on a real port, a real SQLite file, the FCM channel against the FCM emulator, the
clock in the test's hands. Rules: a copy of tests/testdata/rules-e2e (group_wait 1s,
group_interval 3s), whose `idleb` route the test gives to Harim Center.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.testing.clock import ManualClock
from dispatcher.testing.fcm_emulator import FcmEmulator, ReceivedMessage
from tests.support.harness import TESTDATA, Keys, Running, fcm_push, running, settings_for

MORNING = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)
IDLEB_ROUTE = "    - name: idleb\n      match: {regions: [SY07]}"
MOVE = (IDLEB_ROUTE, IDLEB_ROUTE + "\n      receiver: harim-center")


def report(rid: str, lat: float, killed: int, **more: Any) -> dict[str, Any]:
    """A strike in Idleb governorate outside Harim district: the `idleb` route alone."""
    return {
        "id": rid, "source": "observatory", "kind": "airstrike",
        "occurred_at": MORNING.isoformat(), "location": {"lat": lat, "lon": 36.6},
        "casualties": {"killed": killed}, **more,
    }  # fmt: skip


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("observatory", "reports:write")
    k.add("spotter", "reports:write")
    k.add("reader", "read")
    k.add("desk", "admin")
    for leader in ("idleb-lead-1", "idleb-lead-2", "harim-lead-1"):
        k.add(f"phone-{leader}", "devices:write", leader=leader)
    return k


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TESTDATA / "rules-e2e", tmp_path / "rules"))


def move_route(rules_dir: Path) -> None:
    path = rules_dir / "routes.yaml"
    text = path.read_text()
    assert MOVE[0] in text
    path.write_text(text.replace(*MOVE))


class Phones:
    """The three leaders' phones, and what each tick sent to whom."""

    def __init__(self, svc: Running, emu: FcmEmulator, clock: ManualClock) -> None:
        self.svc, self.emu, self.clock, self.seen = svc, emu, clock, 0
        self.leader_of: dict[str, str] = {}

    async def register(self) -> None:
        for leader in ("idleb-lead-1", "idleb-lead-2", "harim-lead-1"):
            token = self.emu.issue_token()
            status, _ = await self.svc.post(
                "/v1/devices", {"token": token, "platform": "android", "locale": "en"},
                key=f"phone-{leader}",
            )  # fmt: skip
            assert status == 201
            self.leader_of[token] = leader

    async def at(self, when: datetime) -> dict[str, ReceivedMessage]:
        """Move the clock to `when`, tick once; the pushes that tick sent, by leader."""
        self.clock.set(when)
        await self.svc.service.pipeline.tick()
        new, self.seen = self.emu.received[self.seen :], len(self.emu.received)
        by_leader = {self.leader_of[m.token]: m for m in new}
        assert len(by_leader) == len(new), "one push per phone"
        return by_leader


def settings(tmp_path: Path, keys: Keys, emu: FcmEmulator, credentials: Path, rules: Path) -> Any:
    return settings_for(
        tmp_path, keys, push=fcm_push(emu, credentials),
        scheduler={"tick": "1h"},  # the test ticks by hand
        rules={"path": str(rules), "watch": False},
    )  # fmt: skip


async def test_a_route_moved_to_another_team_tells_it_everything_and_the_old_team_nothing(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path,
    rules_dir: Path,
) -> None:  # fmt: skip
    clock = ManualClock(MORNING)
    config = settings(tmp_path, keys, fcm_emulator, fcm_credentials, rules_dir)
    async with running(config, keys, clock=clock) as svc:
        phones = Phones(svc, fcm_emulator, clock)
        await phones.register()
        for rid, lat, killed in (("r1", 35.9, 2), ("r2", 35.8, 3)):
            status, body = await svc.post(
                "/v1/reports", report(rid, lat, killed, casualties={"killed": killed,
                                      "injured": 1 if rid == "r1" else 0}),
                key="observatory",
            )  # fmt: skip
            assert (status, body["routes"]) == (202, ["idleb"])
        (old_group,) = body["groups"]
        first = await phones.at(MORNING + S)
        assert sorted(first) == ["idleb-lead-1", "idleb-lead-2"]
        assert first["idleb-lead-1"].title == "Idleb · new incidents: 2"
        assert first["idleb-lead-1"].body.splitlines()[0] == "killed: 5 · injured: 1 · trapped: 0"

        # A third strike is waiting for Idleb's next update when the route moves to Harim.
        clock.set(MORNING + 2 * S)
        status, _ = await svc.post("/v1/reports", report("r3", 35.7, 4), key="observatory")
        assert status == 202
        clock.set(MORNING + 3 * S)
        move_route(rules_dir)
        status, applied = await svc.post("/v1/admin/rules/reload", None, key="desk")
        assert status == 200, applied

        status, old = await svc.get(f"/v1/groups/{old_group}", key="reader")
        assert (old["state"], old["receiver"], old["closed_reason"]) == (
            "closed", "idleb-center", "receiver changed to harim-center",
        )  # fmt: skip
        new_group = old["handed_over_to"]
        status, new = await svc.get(f"/v1/groups/{new_group}", key="reader")
        assert (new["state"], new["receiver"], new["took_over_from"], new["seq"]) == (
            "open", "harim-center", old_group, 0,
        )  # fmt: skip

        assert await phones.at(MORNING + 3 * S) == {}, "the new group waits its group_wait"
        handed = await phones.at(MORNING + 4 * S)
        assert sorted(handed) == ["harim-lead-1"], "Idleb hears nothing more"
        whole = handed["harim-lead-1"]
        assert whole.title == "Idleb · new incidents: 3", "every incident, as new"
        lines = whole.body.splitlines()
        assert lines[0] == "killed: 9 · injured: 1 · trapped: 0"
        assert lines[-1].startswith("incidents in this alert: 3")
        assert (whole.data["group_id"], whole.data["seq"]) == (new_group, "1")

        # A second observer of the first strike, with more killed: no new incident, a
        # revised count, and it reaches Harim too.
        clock.set(MORNING + 5 * S)
        status, body = await svc.post(
            "/v1/reports", {**report("s1", 35.9001, 6), "source": "spotter"}, key="spotter"
        )
        assert (status, body["merged"], body["groups"]) == (202, True, [new_group])
        assert await phones.at(MORNING + 6 * S) == {}, "a group_interval after the last"
        merged = await phones.at(MORNING + 7 * S)
        assert sorted(merged) == ["harim-lead-1"]
        assert merged["harim-lead-1"].body.splitlines()[0] == (
            "killed: 13 · injured: 1 · trapped: 0"
        )
        assert merged["harim-lead-1"].data["seq"] == "2"
        assert await phones.at(MORNING + 20 * S) == {}


async def test_an_edit_made_while_the_service_was_down_is_applied_at_start(
    tmp_path: Path, keys: Keys, fcm_emulator: FcmEmulator, fcm_credentials: Path,
    rules_dir: Path,
) -> None:  # fmt: skip
    clock = ManualClock(MORNING)
    config = settings(tmp_path, keys, fcm_emulator, fcm_credentials, rules_dir)
    async with running(config, keys, clock=clock) as svc:
        phones = Phones(svc, fcm_emulator, clock)
        await phones.register()
        status, body = await svc.post("/v1/reports", report("r1", 35.9, 2), key="observatory")
        assert status == 202
        (old_group,) = body["groups"]
        assert sorted(await phones.at(MORNING + S)) == ["idleb-lead-1", "idleb-lead-2"]

    move_route(rules_dir)
    clock.set(MORNING + 10 * S)
    async with running(config, keys, clock=clock) as svc:
        phones.svc = svc
        status, old = await svc.get(f"/v1/groups/{old_group}", key="reader")
        assert (old["state"], old["closed_reason"]) == (
            "closed", "receiver changed to harim-center",
        )  # fmt: skip
        handed = await phones.at(MORNING + 11 * S)
        assert sorted(handed) == ["harim-lead-1"]
        assert handed["harim-lead-1"].title == "Idleb · new incidents: 1"
        assert handed["harim-lead-1"].body.splitlines()[0] == "killed: 2 · injured: 0 · trapped: 0"
        assert handed["harim-lead-1"].data["group_id"] == old["handed_over_to"]
