"""The `dispatcher` command as an operator runs it: a real process, real signals."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.support.harness import TESTDATA
from tests.support.process import serve_env, serving

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, "-m", "dispatcher", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def new_key(*args: str) -> tuple[str, dict[str, object]]:
    done = run("keys", "new", "--config-entry", *args)
    assert done.returncode == 0, done.stderr
    key = re.search(r"^key: (\S+)$", done.stdout, re.M)
    assert key is not None
    entry = json.loads(done.stdout.strip().splitlines()[-1])
    return key.group(1), entry


def test_keys_new_prints_a_key_and_its_hash_only() -> None:
    key, entry = new_key("--name", "obs", "--scope", "reports:write", "--scope", "read")
    assert entry == {
        "name": "obs",
        "sha256": hashlib.sha256(key.encode()).hexdigest(),
        "scopes": ["reports:write", "read"],
    }
    other, _ = new_key("--name", "obs", "--scope", "read")
    assert other != key
    refused = run("keys", "new", "--config-entry", "--name", "p", "--scope", "devices:write")
    assert refused.returncode == 1
    assert "--leader" in refused.stderr


def test_a_bad_config_names_every_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("server:\n  port: -1\nstorage:\n  uri: x\n")
    done = run("serve", "--config", str(cfg))
    assert done.returncode == 1
    assert "server.port" in done.stderr
    assert "storage.uri: unknown setting" in done.stderr


async def test_serve_says_what_it_runs_and_accepts_a_report(tmp_path: Path) -> None:
    key, entry = new_key("--name", "obs", "--scope", "reports:write")
    phone_key, phone_entry = new_key(
        "--name", "phone", "--scope", "devices:write", "--leader", "harim-lead-1"
    )
    env = serve_env(
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
        rules=TESTDATA / "rules-e2e",
        keys=[entry, phone_entry],
    )
    async with serving(env, tmp_path) as served:
        banner = served.banner
        assert any(line.startswith("rules: ") and "routes.yaml" in line for line in banner)
        assert any("push: console (no FCM credentials" in line for line in banner)
        assert any(line.startswith("store: sqlite+aiosqlite:///") for line in banner)

        token = "device-token-" + "q" * 60
        async with aiohttp.ClientSession() as http:
            async with http.post(
                served.url + "/v1/devices",
                json={"token": token, "platform": "android", "locale": "en"},
                headers={"Authorization": f"Bearer {phone_key}"},
            ) as resp:
                assert resp.status == 201
            async with http.post(
                served.url + "/v1/reports",
                json={
                    "id": "cli-1",
                    "source": "observatory",
                    "kind": "shelling",
                    "occurred_at": "2026-01-01T10:00:00+02:00",
                    "region": "SY0703",
                    "casualties": {"injured": 3},
                },
                headers={"Authorization": f"Bearer {key}"},
            ) as resp:
                assert resp.status == 202, await resp.text()
        stderr = served.proc.stderr
        assert stderr is not None
        log = b""
        while b"push to" not in log:
            log += await asyncio.wait_for(stderr.readline(), timeout=15)
        assert b"Harim" in log
        assert token.encode() not in log, "device tokens never appear in logs"
        served.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.proc.wait(), timeout=15) == 0


def test_db_upgrade_is_repeatable(tmp_path: Path) -> None:
    env = {"DISPATCHER_STORAGE__URL": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"}
    first = run("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert "was None" in first.stdout
    second = run("db", "upgrade", env=env)
    assert second.stdout.strip() == first.stdout.strip().split(" (")[0]


def test_rules_check_test_and_show_as_an_operator_runs_them(tmp_path: Path) -> None:
    good = str(TESTDATA / "rules-e2e")
    checked = run("rules", "check", good)
    assert (checked.returncode, checked.stdout.strip()) == (0, f"{good}: 0 error(s), 0 warning(s)")
    bad = run("rules", "check", str(TESTDATA / "rules-bad" / "unknown-team"))
    assert bad.returncode == 1
    assert "did you mean 'idleb-center'?" in bad.stdout
    warned = run("rules", "check", str(TESTDATA / "rules-bad" / "shadowed"))
    assert warned.returncode == 0, "warnings alone do not fail the check"

    dry = run("rules", "test", good, "--lat", "36.12", "--lon", "36.52", "--killed", "2", "--json")
    assert dry.returncode == 0, dry.stderr
    result = json.loads(dry.stdout)
    assert result["region"]["path"] == ["SY07", "SY0703"]
    assert [(r["path"], r["receiver"]) for r in result["routes"]] == [
        (["root", "harim"], "harim-center"),
        (["root", "idleb"], "idleb-center"),
    ]
    assert [x["id"] for x in result["routes"][1]["leaders"]] == ["idleb-lead-1", "idleb-lead-2"]

    report = tmp_path / "report.json"
    fire = {"id": "x", "source": "s", "kind": "fire", "occurred_at": "2026-11-24T10:00:00Z"}
    report.write_text(json.dumps({**fire, "region": "SY07"}))
    text = run("rules", "test", good, "--report", str(report))
    assert text.stdout.splitlines()[1] == (
        "route root > idleb: Idleb Center (idleb-center) [grouped by region=SY07]"
    )
    named = run("rules", "test", good, "--region", "إدلب", "--killed", "12")
    assert named.stdout.splitlines()[1:3] == [
        "route root > mass-casualty: Sara (leader, Idleb Center) (idleb-lead-2) [immediate]",
        "  leaders: Sara (idleb-lead-2, en)",
    ]
    refused = run("rules", "test", good, "--region", "SY99")
    assert refused.returncode == 1
    assert "region: unknown region 'SY99'" in refused.stderr

    shown = run("rules", "show", good)
    assert shown.stdout.splitlines()[2] == (
        "  mass-casualty: killed >= 10 -> idleb-lead-2 (continue) "
        "[group by region:0; immediate, each report at once, ttl 1h, close after 3h]"
    )
    assert shown.stdout.splitlines()[3].startswith("  harim: regions in ['SY0703'] -> harim-center")
    broken = run("rules", "show", str(TESTDATA / "rules-bad" / "cycle"))
    assert broken.returncode == 1


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    done = run(
        "serve",
        env={
            "DISPATCHER_STORAGE__URL": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
            "DISPATCHER_SERVER__PORT": "0",
        },
    )
    assert done.returncode == 1
    assert "cannot open the store" in done.stderr
    assert "127.0.0.1:1/nowhere" in done.stderr
    assert "Traceback" not in done.stderr


def test_rules_diff_tells_who_would_gain_or_lose_which_alerts(tmp_path: Path) -> None:
    old = TESTDATA / "rules-e2e"
    new = tmp_path / "rules"
    new.mkdir()
    for name in ("regions.yaml", "teams.yaml"):
        (new / name).write_text((old / name).read_text())
    # The edit: the mass-casualty threshold drops to 5 and Harim's route goes away.
    routes = (old / "routes.yaml").read_text().replace('">= 10"', '">= 5"')
    idleb_only = "    - name: idleb\n      match: {regions: [SY07]}\n"
    (new / "routes.yaml").write_text(routes.split("    - name: harim")[0] + idleb_only)
    at = "2026-11-24T10:00:00+02:00"
    lines = [
        {"id": "r1", "source": "obs", "kind": "airstrike", "occurred_at": at,
         "location": {"lat": 36.12, "lon": 36.52}, "casualties": {"killed": 6}},
        {"id": "r2", "source": "obs", "kind": "fire", "occurred_at": at, "region": "idleb",
         "notes": "a\u2028b\u2029c\u0085d"},  # text, not line ends: still one line
        {"id": "r3", "source": "obs", "kind": "flood", "occurred_at": at, "region": "SY07"},
    ]  # fmt: skip
    reports = tmp_path / "reports.ndjson"
    ndjson = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n{broken\n"
    assert len(ndjson.splitlines()) > 4, "what splitting on every line break would break"
    reports.write_bytes(ndjson.encode() + b'{"id": "\xff"}\n')  # a line that is not UTF-8

    done = run("rules", "diff", str(old), str(new), "--reports", str(reports), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["replayed"] == 2
    assert [why.split(":")[0] for why in result["invalid"]] == ["line 4", "line 5", "line 3"]
    assert "not UTF-8" in result["invalid"][1]
    assert result["leaders"] == {
        "harim-lead-1": {"lost": ["obs/r1"]},
        "idleb-lead-2": {"now immediate": ["obs/r1"]},
    }, "r2 (fire in Idleb, nobody killed) reaches the same leaders under both"
    (change,) = result["reports"]
    assert change["new"]["leaders"]["idleb-lead-2"] == {"route": "mass-casualty",
                                                         "immediate": True}  # fmt: skip

    text = run("rules", "diff", str(old), str(new), "--reports", str(reports))
    assert "- Omar (harim-lead-1) would lose 1 report:" in text.stdout
    assert "! Sara (idleb-lead-2) would hear at once of 1 report:" in text.stdout


def test_rules_diff_replays_surges_in_time_order(tmp_path: Path) -> None:
    old = TESTDATA / "rules-e2e"
    new = tmp_path / "rules"
    new.mkdir()
    for name in ("regions.yaml", "teams.yaml"):
        (new / name).write_text((old / name).read_text())
    surge = (
        "  routes:\n"
        "    - name: idleb-surge\n"
        '      surge: {incidents: ">= 3", within: 10m}\n'
        "      match: {regions: [SY07]}\n"
    )
    (new / "routes.yaml").write_text(
        (old / "routes.yaml").read_text().replace("  routes:\n", surge)
    )

    def strike(rid: str, minute: int, lat: float, source: str = "obs") -> dict[str, object]:
        return {"id": rid, "source": source, "kind": "airstrike",
                "occurred_at": f"2026-11-24T10:{minute:02d}:00+02:00",
                "location": {"lat": lat, "lon": 36.52}, "casualties": {"killed": 1}}  # fmt: skip

    lines = [  # out of order, as files are: the replay sorts them by time
        strike("s3", 5, 36.2), strike("s1", 0, 36.12), strike("s2", 3, 36.16),
        strike("cd-1", 1, 36.12, source="civil-defence"),  # s1 again: one strike, counted once
        strike("s4", 30, 36.12),
    ]  # fmt: skip
    reports = tmp_path / "reports.ndjson"
    reports.write_text("\n".join(json.dumps(x) for x in lines) + "\n")

    done = run("rules", "diff", str(old), str(new), "--reports", str(reports), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reports"] == [], "a surge route takes no report from the others"
    alert = {"route": "idleb-surge", "receiver": "idleb-center", "group": {"region": "SY07"},
             "opened_at": "2026-11-24T08:05:00+00:00",
             "subsided_at": "2026-11-24T08:10:00+00:00", "peak": 3, "repeats": 0}  # fmt: skip
    assert result["surges"] == {
        "old": [],
        "new": [alert],
        "leaders": {"idleb-lead-1": {"gained": [alert]}, "idleb-lead-2": {"gained": [alert]}},
    }
    back = run("rules", "diff", str(new), str(old), "--reports", str(reports))
    assert "surge alerts: 1 with the old rules, 0 with the new" in back.stdout
    assert "- Sara (idleb-lead-2) would lose 1 surge alert:" in back.stdout
    assert (
        "    idleb-surge (region=SY07): 2026-11-24 08:05-08:10 UTC, up to 3 incidents, "
        "told again 0 times" in back.stdout
    )


async def test_silences_are_added_listed_and_expired_from_the_command_line(
    tmp_path: Path,
) -> None:
    admin, admin_entry = new_key("--name", "desk", "--scope", "admin")
    env = serve_env(
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
        rules=TESTDATA / "rules-e2e",
        keys=[admin_entry],
    )
    async with serving(env, tmp_path) as served:

        def silences(*args: str) -> subprocess.CompletedProcess[str]:
            return run("silences", *args, "--url", served.url, env={"DISPATCHER_API_KEY": admin})

        added = await asyncio.to_thread(
            silences, "add", "--receiver", "harim-center", "--region", "Harim", "--for", "2h",
            "--author", "Central desk", "--reason", "centre relocating",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        silence_id, state = added.stdout.split()[:2]
        assert state == "active"
        assert "receivers=harim-center" in added.stdout
        assert "regions=SY0703" in added.stdout, "a region name becomes its id"
        listed = await asyncio.to_thread(silences, "list")
        assert listed.stdout.split()[:2] == [silence_id, "active"]
        expired = await asyncio.to_thread(silences, "expire", silence_id)
        assert expired.stdout.split()[:2] == [silence_id, "expired"]
        assert (await asyncio.to_thread(silences, "list")).stdout == ""
        refused = await asyncio.to_thread(
            silences, "add", "--receiver", "harim-centre", "--for", "1h", "--author", "a",
            "--reason", "r",
        )  # fmt: skip
        assert refused.returncode == 1
        assert "matchers.receivers[0]: unknown team or leader 'harim-centre'" in refused.stderr
