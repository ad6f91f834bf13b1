"""The schema: one definition for SQLite and PostgreSQL (SQLAlchemy Core).

Alembic migrations under `store/migrations/` create exactly these tables; a test compares them.
Times are stored as timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# SQLite only gives AUTOINCREMENT-like rowids to INTEGER PRIMARY KEY, PostgreSQL wants BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Time = UtcDateTime()

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# One event, however many reports describe it (see dispatcher.incidents for the merge rule).
incidents = Table(
    "incidents",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("region", String(64), nullable=False),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("occurred_at", Time, nullable=False),
    Column("created_at", Time, nullable=False),
    Column("named", Boolean, nullable=False),  # created by a reporter naming it
    # Merged into another incident (one our own team reported between observers' reports):
    # its reports count there (dispatcher/counting.py, docs/counting.md).
    Column("merged_into", String(200), nullable=True),
)
# Only merged incidents are indexed: the incidents written in a surge add nothing to it.
Index(
    "ix_incidents_merged_into",
    incidents.c.merged_into,
    sqlite_where=text("merged_into IS NOT NULL"),
    postgresql_where=text("merged_into IS NOT NULL"),
)
# On PostgreSQL merge candidates are looked up by kind, a latitude band (about 1 km), a
# longitude band and a time window, all answered from this index. SQLite has none: its one
# writer keeps recent incidents in memory (store/incident_memory.py), and an index that every new
# incident is added to at a random place dirtied a page of it for each, a third of what a
# commit cost. Listings by time.
Index(
    "ix_incidents_kind_lat",
    incidents.c.kind,
    incidents.c.lat,
    incidents.c.lon,
    incidents.c.occurred_at,
).ddl_if(dialect="postgresql")
Index("ix_incidents_occurred_at", incidents.c.occurred_at)

# Every revision of every report, as received. The live revision of (source, ext_id) is the
# highest one; nothing is ever updated in place, so who said what and when is kept.
reports = Table(
    "reports",
    metadata,
    Column("pk", Id, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("ext_id", String(200), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("occurred_at", Time, nullable=False),
    Column("received_at", Time, nullable=False),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("given_region", String(64), nullable=True),
    Column("region", String(64), nullable=False),
    Column("killed", Integer, nullable=False),
    Column("injured", Integer, nullable=False),
    Column("trapped", Integer, nullable=False),
    Column("rescued", Integer, nullable=False),
    Column("notes", Text, nullable=True),
    Column("key_name", String(100), nullable=False),
    Column("rules_version", String(64), nullable=False),
    Column("incident_id", String(200), ForeignKey("incidents.id"), nullable=True),
    # The source's trust tier when the report was accepted, and the site it counts
    # (dispatcher/counting.py).
    Column("tier", String(10), nullable=False, server_default=text("'other'")),
    Column("site", String(100), nullable=True),
    UniqueConstraint("source", "ext_id", "revision", name="uq_reports_source_ext_id_revision"),
)
Index("ix_reports_incident_id", reports.c.incident_id)
# "today: N" in each update: the region's reports since midnight.
Index("ix_reports_region_occurred_at", reports.c.region, reports.c.occurred_at)

# One alert group per (route, group_by values) while it is open; its receiver is part of
# what it is (as in Alertmanager): a route given to another receiver closes it and opens
# another. Its timer lives here, not in
# memory, so a restart resumes every group where it was.
alert_groups = Table(
    "alert_groups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("route_id", String(200), nullable=False),
    Column("group_key", String(500), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("receiver", String(100), nullable=False),
    Column("created_at", Time, nullable=False),
    Column("next_flush_at", Time, nullable=True),
    Column("last_flush_at", Time, nullable=True),
    Column("pending", Boolean, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("group_interval_s", Float, nullable=False),
    Column("rules_version", String(64), nullable=False),
    Column("closed_at", Time, nullable=True),
    # The group's life (see dispatcher.group.Life): when the last report came, how often to
    # remind and when to close, and the first acknowledgement, which stops reminders.
    Column("last_report_at", Time, nullable=True),
    Column("repeat_interval_s", Float, nullable=True),
    Column("close_after_s", Float, nullable=True),
    Column("acked_at", Time, nullable=True),
    # The receiving team's escalate_after when the group opened, and when it escalated.
    Column("escalate_after_s", Float, nullable=True),
    Column("escalated_at", Time, nullable=True),
    # A group whose route the rules gave another receiver is closed without a word to the
    # old one, and a new group takes over its reports (see store/hand_over.py): why it
    # closed, and the group each way.
    Column("closed_reason", String(200), nullable=True),
    Column("handed_over_to", String(32), nullable=True),
    Column("took_over_from", String(32), nullable=True),
    # Surge groups (dispatcher.surge): when the surge alert now open opened, and the count
    # the group's last surge push told.
    Column("surge_open_at", Time, nullable=True),
    Column("surge_told", Integer, nullable=True),
    # Raised when an incident some of its reports joined is merged into another: a flush
    # then counts the group's reports again, whole.
    Column("recount", Integer, nullable=False, server_default=text("0")),
)
Index(
    "uq_alert_groups_open",
    alert_groups.c.route_id,
    alert_groups.c.group_key,
    unique=True,
    sqlite_where=text("closed_at IS NULL"),
    postgresql_where=text("closed_at IS NULL"),
)
Index("ix_alert_groups_due", alert_groups.c.pending, alert_groups.c.next_flush_at)

group_reports = Table(
    "group_reports",
    metadata,
    Column("group_id", String(32), ForeignKey("alert_groups.id"), primary_key=True),
    Column("report_pk", Id, ForeignKey("reports.pk"), primary_key=True),
    Column("added_at", Time, nullable=False),
)

# Who acknowledged a group, when, and whether they are responding. Every leader of the team
# is told in the group's next update.
group_acks = Table(
    "group_acks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("group_id", String(32), ForeignKey("alert_groups.id"), nullable=False),
    Column("leader_id", String(100), nullable=False),
    Column("at", Time, nullable=False),
    Column("responding", Boolean, nullable=False),
    Column("note", String(500), nullable=True),
)
Index("ix_group_acks_group_id", group_acks.c.group_id)
# Operators' silences: matchers and a time window; expiring one early sets ends_at.
silences = Table(
    "silences",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at", Time, nullable=False),
    Column("ends_at", Time, nullable=False),
    Column("author", String(100), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("created_at", Time, nullable=False),
    Column("created_by_key", String(100), nullable=False),
)
Index("ix_silences_ends_at", silences.c.ends_at)
# What each update of a group said, in numbers: the source of every rendered push.
group_updates = Table(
    "group_updates",
    metadata,
    Column("group_id", String(32), ForeignKey("alert_groups.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("created_at", Time, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("rules_version", String(64), nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("leader_id", String(100), nullable=False),
    Column("token", String(4096), nullable=False, unique=True),
    Column("platform", String(16), nullable=False),
    Column("locale", String(8), nullable=False),
    Column("created_at", Time, nullable=False),
    Column("updated_at", Time, nullable=False),
    Column("disabled_at", Time, nullable=True),
    Column("disabled_reason", String(200), nullable=True),
    # The API key that registered the phone (api_keys.id; none for a key from the config):
    # revoking the key disables its phones.
    Column("key_id", String(32), nullable=True),
    # A Web Push subscription (platform "web", its endpoint in `token`): the browser's
    # P-256 public key and auth secret (RFC 8291), both base64url; NULL for FCM phones.
    Column("p256dh", String(100), nullable=True),
    Column("auth", String(40), nullable=True),
)
Index("ix_devices_leader_id", devices.c.leader_id)
Index("ix_devices_key_id", devices.c.key_id)

# API keys made at run time (`dispatcher keys new`, the admin API, a phone's pairing); keys
# in the config file stay there. Only the SHA-256 of a key is kept. Revoked keys stay, for
# the record of who did what with which key.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # key_<12 hex>
    Column("name", String(100), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("leader_id", String(100), nullable=True),
    Column("created_at", Time, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("last_used_at", Time, nullable=True),
    Column("revoked_at", Time, nullable=True),
    Column("revoked_by", String(200), nullable=True),
)

# One-time codes that pair a leader's phone: only the code's SHA-256 is kept; redeeming one
# sets used_at (once) and makes the phone's key.
pairings = Table(
    "pairings",
    metadata,
    Column("id", String(32), primary_key=True),  # pair_<12 hex>
    Column("sha256", String(64), nullable=False, unique=True),
    Column("leader_id", String(100), nullable=False),
    Column("created_at", Time, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires_at", Time, nullable=False),
    Column("used_at", Time, nullable=True),
    Column("key_id", String(32), nullable=True),  # the key the redeeming phone got
)

# Keys the service makes once and keeps with its data, e.g. the VAPID key pair that Web
# Push subscriptions are bound to: made on first start, never replaced while present.
service_keys = Table(
    "service_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", Time, nullable=False),
)

# The outbox: one row per (update, device), written in the transaction that made the update,
# sent by the delivery job, never deleted silently. Status: pending, then sent, failed,
# superseded (a newer update of the group for the device came first) or expired.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("group_id", String(32), ForeignKey("alert_groups.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("leader_id", String(100), nullable=False),
    Column("device_id", Id, ForeignKey("devices.id"), nullable=True),
    Column("channel", String(32), nullable=False),
    Column("title", String(500), nullable=False),
    Column("body", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("collapse_key", String(100), nullable=False),
    Column("priority", String(10), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Time, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("message_name", String(300), nullable=True),
    Column("created_at", Time, nullable=False),
    Column("sent_at", Time, nullable=True),
    # Past this a push is not sent (a stale digest hours late misleads): it ends "expired".
    Column("expires_at", Time, nullable=True),
    # A sender's claim: another instance leaves the row alone until then.
    Column("claimed_until", Time, nullable=True),
    # PostgreSQL: the id of the instance that claimed it (store/claims.py); NULL on SQLite.
    Column("claimed_by", Integer, nullable=True),
)
Index("ix_notifications_due", notifications.c.status, notifications.c.next_attempt_at)
Index("ix_notifications_group_id", notifications.c.group_id)

# Every rule set the service applied: which version, when, and how (start-up, file change,
# SIGHUP, API by key ...). Reports and group updates name the version that routed them.
rule_sets = Table(
    "rule_sets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("applied_at", Time, nullable=False),
    Column("how", String(200), nullable=False),
    # What its files said (path in the rules folder -> sha256 of the text in rule_files),
    # so the desk can diff two versions; null for rule sets applied before this was kept.
    Column("files", JSON, nullable=True),
)
Index("ix_rule_sets_applied_at", rule_sets.c.applied_at)

# The text of every rule file a rule set applied held, once per content (a boundary file
# that no edit touched is kept once, not once per version).
rule_files = Table(
    "rule_files",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("text", Text, nullable=False),
)


# Indexes that only some databases have (`ddl_if` above), for comparing the schema of one
# database with this module: Alembic's comparison does not read `ddl_if`.
ONLY_ON = {"ix_incidents_kind_lat": "postgresql"}


def include_object(dialect: str) -> Callable[..., bool]:
    """An Alembic `include_object` hook that leaves out indexes `dialect` does not have."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (type_ == "index" and ONLY_ON.get(name or "", dialect) != dialect)

    return include
