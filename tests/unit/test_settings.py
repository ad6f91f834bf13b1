"""Config file plus environment; a bad config names each bad key and its variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dispatcher.settings import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(ROOT / "config.yaml")
    assert s.server.port == 8080
    assert s.storage.url.startswith("sqlite+aiosqlite:///./data/")
    assert s.push.retry_max == timedelta(minutes=5)
    assert s.fcm_credentials() is None or s.push.fcm.credentials is None


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server:\n  port: 8080\nscheduler:\n  tick: 2s\n")
    monkeypatch.setenv("DISPATCHER_SERVER__PORT", "9191")
    monkeypatch.setenv("DISPATCHER_STORAGE__URL", "postgresql+asyncpg://db/x")
    monkeypatch.setenv("DISPATCHER_PUSH__FCM__ENDPOINT", "http://127.0.0.1:9099")
    monkeypatch.setenv("DISPATCHER_RULES__PATH", "/etc/rules")
    monkeypatch.setenv(
        "DISPATCHER_AUTH__KEYS",
        '[{"name": "obs", "sha256": "' + "a" * 64 + '", "scopes": ["reports:write"]}]',
    )
    s = load_settings(cfg)
    assert s.server.port == 9191
    assert s.storage.url == "postgresql+asyncpg://db/x"
    assert s.push.fcm.endpoint == "http://127.0.0.1:9099"
    assert str(s.rules.path) == "/etc/rules"
    assert s.auth.keys[0].name == "obs"
    assert s.scheduler.tick == timedelta(seconds=2)


def test_credentials_fall_back_to_google_application_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/secrets/sa.json")
    assert load_settings(None).fcm_credentials() == Path("/secrets/sa.json")
    monkeypatch.setenv("DISPATCHER_PUSH__FCM__CREDENTIALS", "/other/sa.json")
    assert load_settings(None).fcm_credentials() == Path("/other/sa.json")


def test_every_problem_is_named_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "server:\n  port: 99999\n  hots: x\n"
        "auth:\n  keys:\n    - {name: a, sha256: nothex, scopes: [write]}\n"
    )
    monkeypatch.setenv("DISPATCHER_SCHEDULER__TICK", "soon")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    text = "\n".join(err.value.problems)
    assert "server.port" in text
    assert "server.hots: unknown setting" in text
    assert "auth.keys.0.sha256" in text
    assert "auth.keys.0.scopes.0" in text
    assert "DISPATCHER_SCHEDULER__TICK" in text
    assert len(err.value.problems) == 5


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server:\n  port: [8080\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert err.value.problems[0].startswith(f"{cfg}:3:")


def test_web_push_settings_name_each_bad_origin_and_subject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "push:\n  webpush:\n    subject: operator\n"
        "    allowed_origins: ['https://push.example.org/', 'http://push.example.net']\n"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert [p.split(": ")[1] for p in err.value.problems] == [
        "push.webpush.subject",
        "push.webpush.allowed_origins",
    ]
    assert "http on loopback" in err.value.problems[1]
    assert "DISPATCHER_PUSH__WEBPUSH__ALLOWED_ORIGINS" in err.value.problems[1]
    monkeypatch.setenv("DISPATCHER_PUSH__WEBPUSH__ALLOWED_ORIGINS", '["HTTPS://Push.Example.org"]')
    s = load_settings(None)
    assert s.push.webpush.allowed_origins == ["https://push.example.org"]
    assert s.push.webpush.subject == "mailto:operator@localhost"
