"""Logs an operator can use: JSON lines with the ids that tie them together, a request id on
every answer, no library chatter at start, and commands that end quietly into `head`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from dispatcher import logs
from tests.support.harness import TESTDATA
from tests.support.process import ROOT, serve_env

ADMIN = "test-key-admin-logs"
PHONE = "test-key-phone-logs"


async def test_json_logs_carry_request_report_and_group_ids(tmp_path: Path) -> None:
    from dispatcher.web.auth import hash_key

    rules = tmp_path / "rules"
    shutil.copytree(TESTDATA / "rules-e2e", rules)
    env = serve_env(
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
        rules=rules,
        keys=[
            {"name": "desk", "sha256": hash_key(ADMIN), "scopes": ["admin"]},
            {
                "name": "phone",
                "sha256": hash_key(PHONE),
                "scopes": ["devices:write"],
                "leader": "idleb-lead-2",
            },
        ],
        DISPATCHER_LOGGING__FORMAT="json",
        DISPATCHER_RULES__WATCH="false",
        # The immediate push carries the report's request id; a tick that wins the race for
        # the group sends it too, rightly without one. Only the immediate path sends here.
        DISPATCHER_SCHEDULER__TICK="1h",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatcher", "serve", "--config", str(ROOT / "config.yaml"),
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    seen: list[dict[str, Any]] = []
    try:
        while not any(r["message"].startswith("auth:") for r in seen):
            line = await asyncio.wait_for(proc.stderr.readline(), timeout=30)
            assert line, f"the service ended: {seen}"
            seen.append(json.loads(line))
        url = re.match(r"dispatcher listening on (\S+)$", seen[0]["message"])
        assert url is not None, seen
        headers = {"Authorization": f"Bearer {ADMIN}", "X-Request-Id": "desk-42"}
        (rules / "routes.yaml").write_text("routes: [\n")
        async with aiohttp.ClientSession() as http:
            async with http.post(url.group(1) + "/v1/admin/rules/reload", headers=headers) as r:
                assert r.status == 422
                assert r.headers["X-Request-Id"] == "desk-42"
                assert (await r.json(content_type=None))["request_id"] == "desk-42"
            (rules / "routes.yaml").write_text((TESTDATA / "rules-e2e/routes.yaml").read_text())
            async with http.post(
                url.group(1) + "/v1/devices",
                json={"token": "t" * 40, "platform": "android"},
                headers={"Authorization": f"Bearer {PHONE}"},
            ) as r:
                assert r.status == 201
            mass = {
                "id": "mass-1", "source": "obs", "kind": "airstrike", "region": "SY0703",
                "occurred_at": datetime.now(UTC).isoformat(), "casualties": {"killed": 12},
            }  # fmt: skip
            async with http.post(
                url.group(1) + "/v1/reports", json=mass, headers={**headers, "X-Request-Id": "r-7"}
            ) as r:
                assert r.status == 202
                assert r.headers["X-Request-Id"] == "r-7"
                group = (await r.json())["groups"][0]
            async with http.get(url.group(1) + "/healthz", headers={"X-Request-Id": "a b"}) as r:
                made = r.headers["X-Request-Id"]
                assert re.fullmatch(r"[0-9a-f]{32}", made), "not a sane token: one is made"
            pushed = None
            while pushed is None:  # the mass-casualty route pushes at once, to the console
                line = await asyncio.wait_for(proc.stderr.readline(), timeout=30)
                record = json.loads(line)
                seen.append(record)
                if record["message"].startswith("push to "):
                    pushed = record
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), timeout=30)
    assert not any("alembic" in r["logger"] for r in seen), "no Alembic chatter at start"
    refused = next(r for r in seen if "refused" in r["message"])
    assert (refused["level"], refused["request_id"]) == ("ERROR", "desk-42")
    assert {k: pushed[k] for k in ("request_id", "report_id", "group_id")} == {
        "request_id": "r-7",
        "report_id": "obs/mass-1",
        "group_id": group,
    }
    assert set(seen[0]) == {"time", "level", "logger", "message"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", seen[0]["time"])


def test_the_json_formatter_writes_one_object_with_the_ids_in_context() -> None:
    record = logging.LogRecord("dispatcher.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    with logs.context(logs.REQUEST_ID, "q-1"), logs.context(logs.GROUP_ID, "g-1"):
        line = logs.JsonFormatter().format(record)
    out = json.loads(line)
    assert "\n" not in line
    assert {k: out[k] for k in ("level", "logger", "message", "request_id", "group_id")} == {
        "level": "WARNING",
        "logger": "dispatcher.x",
        "message": "a b",
        "request_id": "q-1",
        "group_id": "g-1",
    }
    assert "report_id" not in out
    assert logs.REQUEST_ID.get() is None, "the ids end with their block"


def test_commands_piped_into_a_closed_reader_end_quietly() -> None:
    for command in ("rules show", "rules check"):
        done = subprocess.run(  # noqa: S602 - a pipe is what is tested; our own command
            f"{sys.executable} -m dispatcher {command} {TESTDATA / 'rules-e2e'} | true",
            shell=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=os.environ,
            timeout=60,
            check=False,
        )
        assert done.stderr == "", f"{command}: {done.stderr}"
