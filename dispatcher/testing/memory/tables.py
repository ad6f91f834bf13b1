"""What the in-memory store holds: the database's tables as dictionaries of plain rows,
shared by every room (revoking a key disables phones and fails pushes; a claim reads the
phone of each push), as the rooms of `Store` share one database.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dispatcher.incidents import IncidentIndex, MergeRule
from dispatcher.model import Point
from dispatcher.silence import Silence
from dispatcher.store.access import KeyRow, Pairing
from dispatcher.store.report_row import StoredReport
from dispatcher.store.rows import Ack, DeviceRow, GroupRow


def aware(at: datetime) -> datetime:
    """`at`, refused if naive (as the write path refuses it on SQLite): a test that passes
    here must not fail there for its times."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC time")
    return at


@dataclass
class Device:
    row: DeviceRow
    key_id: str | None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


@dataclass
class Incident:
    id: str
    kind: str
    region: str
    location: Point | None
    occurred_at: datetime
    named: bool
    merged_into: str | None = None


@dataclass
class Update:
    seq: int
    created_at: datetime
    summary: dict[str, Any]
    rules_version: str


@dataclass
class Push:
    """A row of the outbox (the `notifications` table)."""

    id: int
    group_id: str
    seq: int
    leader_id: str
    device_id: int | None
    channel: str
    title: str
    body: str
    data: dict[str, str]
    collapse_key: str
    priority: str
    created_at: datetime
    next_attempt_at: datetime | None
    expires_at: datetime | None
    status: str = "pending"
    attempts: int = 0
    claimed_until: datetime | None = None
    last_error: str | None = None
    message_name: str | None = None
    sent_at: datetime | None = None


@dataclass
class PairingRow:
    row: Pairing
    sha256: str


@dataclass
class Tables:
    merge: MergeRule = field(default_factory=MergeRule)
    # admin
    devices: dict[str, Device] = field(default_factory=dict)  # by token
    device_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    silences: dict[str, Silence] = field(default_factory=dict)
    rule_sets: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    service_keys: dict[str, str] = field(default_factory=dict)
    keys: dict[str, tuple[KeyRow, str]] = field(default_factory=dict)  # id -> (row, sha256)
    pairings: dict[str, PairingRow] = field(default_factory=dict)  # by sha256
    # reports and incidents
    reports: dict[int, StoredReport] = field(default_factory=dict)  # by pk, as stored
    revisions: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)  # -> rev -> pk
    report_pks: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    incidents: dict[str, Incident] = field(default_factory=dict)
    incident_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    index: IncidentIndex = field(init=False)  # every located incident not merged away
    # alert groups
    groups: dict[str, GroupRow] = field(default_factory=dict)
    joined: dict[str, list[tuple[int, datetime]]] = field(default_factory=dict)  # (pk, added)
    updates: dict[str, list[Update]] = field(default_factory=dict)
    acks: dict[str, list[Ack]] = field(default_factory=dict)
    # the outbox
    pushes: dict[int, Push] = field(default_factory=dict)
    push_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.index = IncidentIndex(self.merge, since=datetime.min.replace(tzinfo=UTC))

    def device(self, device_id: int | None) -> Device | None:
        if device_id is None:
            return None
        return next((d for d in self.devices.values() if d.row.id == device_id), None)

    def counted_in(self, incident_id: str | None) -> str | None:
        """The incident a report of `incident_id` counts in: the one it was merged into."""
        if incident_id is None:
            return None
        incident = self.incidents.get(incident_id)
        if incident is None or incident.merged_into is None:
            return incident_id
        return incident.merged_into

    def as_read(self, pk: int, *, counted: bool = False) -> StoredReport:
        """A stored report as a read gives it: with when it was received, and (`counted`) in
        the incident it counts in."""
        stored = self.reports[pk]
        report = stored.report._replace(received_at=stored.received_at)
        if counted:
            report = report._replace(incident=self.counted_in(report.incident))
        return StoredReport(report, pk, stored.received_at, stored.key_name, stored.rules_version)
