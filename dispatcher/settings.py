"""Service settings: `config.yaml`, overridden by `DISPATCHER_<SECTION>__<KEY>` variables.

Read once at start-up by the CLI; every other module gets the typed `Settings` it needs.
A bad config stops start-up with one line per problem, naming the key and the variable.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "DISPATCHER_"
GOOGLE_FCM_ENDPOINT = "https://fcm.googleapis.com"
DEFAULT_WEBPUSH_SUBJECT = "mailto:operator@localhost"


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        from dispatcher.rules.durations import parse_duration

        return parse_duration(value)
    return value


# "500ms", "30s", "2m", "1h30m" as operators write them in the rules; seconds as numbers.
Duration = Annotated[timedelta, BeforeValidator(_duration)]

Scope = Literal["reports:write", "devices:write", "read", "admin"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(_Section):
    """Serve HTTPS from these PEM files (browsers install the leaders' app and allow push
    only over HTTPS); both are read again on SIGHUP."""

    cert: Path  # the certificate chain, leaf first
    key: Path


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    tls: TlsSettings | None = None
    # Where people reach the service (links and QR codes for phones), e.g. the reverse
    # proxy's https://dispatch.example.org; default: scheme, host and port above.
    public_url: str | None = Field(None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client; from
    # anyone else the header is ignored (it would let a guesser pose as many addresses).
    trusted_proxies: list[IPvAnyNetwork] = []

    def base_url(self, port: int | None = None) -> str:
        """The public URL without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port if port is None else port}"


class StorageSettings(_Section):
    url: str = "sqlite+aiosqlite:///./data/dispatcher.db"
    # FULL: a 202 survives power loss, not only a process crash. NORMAL is faster and
    # survives a crash of the service (WAL), which may be enough behind a UPS.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Reports handed to the database and not yet committed, at most: past this, intake
    # answers 503 with Retry-After instead of queueing without end (store/submit.py).
    max_waiting_reports: int = Field(50_000, ge=1)


class RulesSettings(_Section):
    path: Path = Path("rules")
    watch: bool = True  # apply edits under `path` within a second or two


class FcmSettings(_Section):
    credentials: Path | None = None
    endpoint: str = GOOGLE_FCM_ENDPOINT
    timeout: float = Field(10.0, gt=0)  # seconds for one message's answer
    # Messages in flight at once, each on its own keep-alive connection.
    connections: int = Field(64, ge=1, le=1000)


class WebPushSettings(_Section):
    """Web Push (RFC 8030/8291/8292) to browsers and installed web apps, beside FCM."""

    # Who runs this service, for push services to reach (the VAPID `sub` claim): a mailto:
    # or https: URL. The default works, and start-up warns until an operator sets theirs.
    subject: str = Field(DEFAULT_WEBPUSH_SUBJECT, pattern=r"^(mailto:\S+@\S+|https://\S+)$")
    # Push-service origins accepted beside the well-known ones (Google, Mozilla, Apple,
    # Microsoft), e.g. a self-hosted autopush: "https://push.example.org". Only loopback
    # origins may be http:// (a test's or a bench's emulator).
    allowed_origins: list[str] = []
    timeout: float = Field(10.0, gt=0)  # seconds for a push service to answer one push
    connections: int = Field(64, ge=1, le=1000)  # pushes in flight at once, per push service

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        from dispatcher.notify.webpush_endpoints import check_origin

        return [check_origin(origin) for origin in value]


class WebhookSettings(_Section):
    """A fallback channel: a JSON POST signed with HMAC-SHA256, e.g. to an SMS gateway or a
    chat bridge. Teams and leaders name it as `fallback` in rules/teams.yaml."""

    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr = Field(min_length=16)  # shared with the receiver; never logged
    timeout: float = Field(10.0, gt=0)

    @field_validator("name")
    @classmethod
    def _not_a_push_channel(cls, value: str) -> str:
        if value in ("fcm", "console", "webpush"):
            raise ValueError(f"'{value}' is the name of a push channel; give the webhook another")
        return value


class PushSettings(_Section):
    fcm: FcmSettings = FcmSettings()
    webpush: WebPushSettings = WebPushSettings()
    webhooks: list[WebhookSettings] = []
    max_attempts: int = Field(8, ge=1)
    retry_base: Duration = timedelta(seconds=2)
    retry_max: Duration = timedelta(minutes=5)


class SchedulerSettings(_Section):
    tick: Duration = timedelta(seconds=1)


class AlertsSettings(_Section):
    # Times in alert texts are shown in the leaders' zone.
    timezone: str = "Asia/Damascus"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from exc
        return value


class RetentionSettings(_Section):
    # Reports and their revisions are kept for good (who said what, when). What goes: the
    # delivery records of groups closed this long ago, and phones disabled this long ago
    # (their tokens with them): a seized server or backup then says less about who was
    # alerted, on which phone.
    delivery_records: Duration = timedelta(days=30)
    disabled_devices: Duration = timedelta(days=30)
    every: Duration = timedelta(hours=1)


class IncidentSettings(_Section):
    # Reports of one kind family from different sources within this distance and time are
    # one incident; within anchor_radius_m of one that an own-tier team reported, they join
    # that one (see dispatcher/incidents.py and docs/counting.md).
    merge_radius_m: float = Field(500.0, ge=0)
    merge_window: Duration = timedelta(minutes=15)
    anchor_radius_m: float = Field(1000.0, ge=0)


class ApiKey(_Section):
    name: str = Field(min_length=1)
    sha256: str
    scopes: list[Scope] = Field(min_length=1)
    leader: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be the 64-character lowercase hex SHA-256 of the key")
        return value


class LoggingSettings(_Section):
    # plain: a line a record, for a terminal; json: one object a line (time, level, logger,
    # message, request_id, report_id, group_id), for a log collector. See dispatcher/logs.py.
    format: Literal["plain", "json"] = "plain"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class AuthSettings(_Section):
    keys: list[ApiKey] = []


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    rules: RulesSettings = RulesSettings()
    push: PushSettings = PushSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    alerts: AlertsSettings = AlertsSettings()
    incidents: IncidentSettings = IncidentSettings()
    retention: RetentionSettings = RetentionSettings()
    auth: AuthSettings = AuthSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: an operator overrides the file without editing it.
        return (env_settings, init_settings)

    def fcm_credentials(self) -> Path | None:
        """The service-account file: `push.fcm.credentials`, else GOOGLE_APPLICATION_CREDENTIALS."""
        if self.push.fcm.credentials is not None:
            return self.push.fcm.credentials
        env = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        return Path(env) if env else None


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _env_name(loc: tuple[str | int, ...]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return ENV_PREFIX + "__".join(p.upper() for p in parts)


def load_settings(path: str | Path | None) -> Settings:
    """Read `path` (if given) and the environment into `Settings`, or raise ConfigError."""
    data: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            raise ConfigError([f"{at}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{path}: the config must be a mapping of sections"])
        data = loaded
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown setting"
            problems.append(f"{where}: {key}: {msg} (environment: {_env_name(loc)})")
        raise ConfigError(problems) from exc
