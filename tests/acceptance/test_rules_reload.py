"""Operators edit rules live: a good edit applies, a broken one is refused whole and the last
good rules keep serving."""

from __future__ import annotations

import shutil
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.harness import TESTDATA, Keys, Running, running, settings_for
from tests.support.process import serve_env, serving
from tests.support.waiting import until

BROKEN_TEAM = "receiver: harim-center\n      group_by"


def report(rid: str) -> dict[str, Any]:
    return {
        "id": rid,
        "source": "observatory",
        "kind": "airstrike",
        "occurred_at": datetime.now(UTC).isoformat(),
        "region": "SY0703",
    }


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TESTDATA / "rules-e2e", tmp_path / "rules"))


def edit(rules_dir: Path, old: str, new: str) -> None:
    path = rules_dir / "routes.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture
async def service(tmp_path: Path, rules_dir: Path) -> AsyncIterator[Running]:
    keys = Keys()
    keys.add("obs", "reports:write")
    keys.add("desk", "admin")
    keys.add("reader", "read")
    settings = settings_for(tmp_path, keys, rules={"path": str(rules_dir), "watch": False})
    async with running(settings, keys) as svc:
        yield svc


async def test_a_broken_edit_is_refused_and_the_last_good_rules_serve(
    service: Running, rules_dir: Path
) -> None:
    _, before = await service.get("/v1/rules/status", key="reader")
    edit(rules_dir, "receiver: harim-center", "receiver: harim-centre")

    status, body = await service.post("/v1/admin/rules/reload", None, key="desk")
    assert status == 422
    assert body["serving"] == before["version"]
    assert body["rule_errors"] == [
        f"{rules_dir}/routes.yaml:17:17: unknown team 'harim-centre'; did you mean 'harim-center'?"
    ]
    status, accepted = await service.post("/v1/reports", report("a"), key="obs")
    assert status == 202
    assert accepted["routes"] == ["harim", "idleb"], "alerts keep flowing on the old rules"
    _, now = await service.get("/v1/rules/status", key="reader")
    assert now["version"] == before["version"]
    assert now["last_errors"] == body["rule_errors"]

    edit(rules_dir, "receiver: harim-centre\n      group_by: [region]\n      continue: true",
         "receiver: harim-center\n      group_by: [region]")  # fmt: skip
    status, body = await service.post("/v1/admin/rules/reload", None, key="desk")
    assert status == 200
    assert body["version"] != before["version"]
    assert body["last_errors"] == []
    assert body["applied_by"] == "API by key 'desk'"
    status, accepted = await service.post("/v1/reports", report("b"), key="obs")
    assert accepted["routes"] == ["harim"], "no longer continues to Idleb"
    _, now = await service.get("/v1/rules/status", key="reader")
    assert [(h["version"], h["how"]) for h in now["history"]] == [
        (body["version"], "API by key 'desk'"),
        (before["version"], "start-up"),
    ], "every applied rule set is recorded; the refused one is not"


async def test_reload_needs_the_admin_scope(service: Running) -> None:
    status, _ = await service.post("/v1/admin/rules/reload", None, key="reader")
    assert status == 403


async def test_saved_edits_apply_by_themselves_and_sighup_reloads(
    tmp_path: Path, rules_dir: Path
) -> None:
    keys = Keys()
    keys.add("reader", "read")
    env = serve_env(
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
        rules=rules_dir,
        keys=[k.model_dump() for k in keys.entries],
    )
    headers = {"Authorization": f"Bearer {keys.plain['reader']}"}
    async with serving(env, tmp_path) as served, aiohttp.ClientSession() as http:

        async def status() -> dict[str, Any]:
            async with http.get(served.url + "/v1/rules/status", headers=headers) as resp:
                return dict(await resp.json())

        first = await status()
        edit(rules_dir, "group_interval: 3s", "group_interval: 4s")
        applied = await until(status, lambda b: b["version"] != first["version"], every=0.1)
        assert applied["applied_by"] == "file change"

        edit(rules_dir, "receiver: harim-center", "receiver: nobody")
        refused = await until(status, lambda b: b["last_errors"], every=0.1)
        assert refused["version"] == applied["version"]
        assert "unknown team or leader 'nobody'" in refused["last_errors"][0]

        edit(rules_dir, "receiver: nobody", "receiver: harim-center")
        served.proc.send_signal(signal.SIGHUP)
        healed = await until(status, lambda b: not b["last_errors"], every=0.1)
        assert healed["version"] == applied["version"], "the same content as before"
