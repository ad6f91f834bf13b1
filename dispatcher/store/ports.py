"""The store's rooms, as the rest of the service sees them: one small `Protocol` each.

The pipeline, the delivery stage and the web handlers depend on these, not on `Store`, so a
test can hand them any object that keeps the contract, and a reader sees at once what a
stage may do to the data. `Store` (store/repo.py) implements every one; docs/store.md says
where each room is going.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from dispatcher.group import Counted, GroupTarget
from dispatcher.model import Report
from dispatcher.silence import Silence
from dispatcher.store.access import KeyRow, Pairing, Revoked
from dispatcher.store.report_row import StoredReport
from dispatcher.store.rows import (
    Ack,
    DeliveryRow,
    DeviceRow,
    FlushReads,
    GroupRow,
    IncidentRow,
    LeaderGroup,
    OpenGroup,
    OutboxItem,
    Outcome,
    PendingPush,
)
from dispatcher.store.writer_wire import SaveResult
from dispatcher.surge import SurgeState


class ReportStore(Protocol):
    """Report writes and reads: revisions stored into their groups, a report's revisions,
    incidents."""

    async def save_reports(
        self,
        items: Sequence[tuple[Report, Sequence[GroupTarget]]],
        *,
        now: datetime,
        key_name: str,
        rules_version: str,
    ) -> list[SaveResult]: ...
    async def report_revisions(self, source: str, ext_id: str) -> list[StoredReport]: ...
    async def list_incidents(
        self,
        *,
        regions: frozenset[str] | None,
        kind: str | None,
        since: datetime | None,
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[IncidentRow]: ...
    async def get_incident(self, incident_id: str) -> IncidentRow | None: ...
    async def map_incidents(
        self, *, since: datetime, regions: frozenset[str] | None, kind: str | None, limit: int
    ) -> list[IncidentRow]: ...
    async def reports_received_since(self, since: datetime, limit: int) -> list[Report]: ...


class GroupStore(Protocol):
    """Alert groups and their updates: what is due, a flush's one read, writing an update,
    acknowledgements."""

    async def due_groups(self, now: datetime, limit: int = 200) -> list[GroupRow]: ...
    async def get_group(self, group_id: str) -> GroupRow | None: ...
    async def flush_reads(
        self,
        group_id: str,
        *,
        leader_ids: Sequence[str],
        silences_ending_after: datetime,
        today: tuple[frozenset[str], datetime] | None,
        counted: Counted | None = None,
        told_seq: int | None = None,
    ) -> FlushReads | None: ...
    async def record_update(
        self,
        group: GroupRow,
        *,
        now: datetime,
        summary: dict[str, Any],
        outbox: Sequence[OutboxItem],
        rules_version: str,
        wakeup: datetime | None = None,
        close: bool = False,
        escalate: bool = False,
    ) -> bool: ...
    async def record_update_and_claim(
        self,
        group: GroupRow,
        *,
        now: datetime,
        summary: dict[str, Any],
        outbox: Sequence[OutboxItem],
        rules_version: str,
        lease: timedelta,
        wakeup: datetime | None = None,
    ) -> list[PendingPush] | None: ...
    async def record_surge(
        self,
        group: GroupRow,
        *,
        now: datetime,
        summary: dict[str, Any],
        outbox: Sequence[OutboxItem],
        rules_version: str,
        state: SurgeState,
        wakeup: datetime | None,
        close: bool = False,
    ) -> bool: ...
    async def settle(self, group: GroupRow, *, wakeup: datetime | None = None) -> bool: ...
    async def hold(self, group: GroupRow, *, until: datetime) -> bool: ...
    async def recent_pushes(
        self, route_ids: Sequence[str], *, since: datetime
    ) -> list[tuple[str, tuple[tuple[str, str], ...], datetime]]: ...
    async def acknowledge(
        self, group_id: str, *, leader_id: str, at: datetime, responding: bool, note: str | None
    ) -> GroupRow | None: ...
    async def acks(self, group_id: str) -> list[Ack]: ...
    async def get_update(
        self, group_id: str, seq: int, *, leader_id: str
    ) -> tuple[datetime, dict[str, Any]] | None: ...
    async def leader_groups(
        self, *, receivers: Sequence[str], escalated_from: Sequence[str], incident_limit: int
    ) -> list[LeaderGroup]: ...
    async def open_groups(self, limit: int = 500) -> list[OpenGroup]: ...


class OutboxStore(Protocol):
    """The outbox: claiming pushes to send, recording what became of them, the delivery record."""

    async def claim_pushes(
        self, now: datetime, *, lease: timedelta, limit: int = 500
    ) -> list[PendingPush]: ...
    async def record_outcomes(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        device_of: dict[int, int | None],
        fallbacks: dict[int, str] | None = None,
    ) -> None: ...
    async def deliveries(self, group_id: str) -> list[DeliveryRow]: ...
    async def notification_counts(self) -> dict[str, int]: ...


class DeviceStore(Protocol):
    """Leaders' phones: registering one, signing one out."""

    async def register_device(
        self,
        *,
        leader_id: str,
        token: str,
        platform: str,
        locale: str,
        now: datetime,
        key_id: str | None = None,
        p256dh: str | None = None,
        auth: str | None = None,
    ) -> tuple[DeviceRow, bool]: ...
    async def remove_device(
        self, *, leader_id: str, token: str, now: datetime, reason: str
    ) -> bool: ...
    async def active_devices(self, leader_ids: Sequence[str]) -> list[DeviceRow]: ...


class SilenceStore(Protocol):
    """Silences operators set."""

    async def add_silence(self, silence: Silence, *, key_name: str) -> None: ...
    async def current_silences(self, *, ending_after: datetime) -> list[Silence]: ...
    async def expire_silence(self, silence_id: str, *, now: datetime) -> Silence | None: ...


class RuleSetStore(Protocol):
    """The history of the rule sets in force."""

    async def record_rule_set(
        self,
        *,
        version: str,
        sha256: str,
        applied_at: datetime,
        how: str,
        files: Mapping[str, str] | None = None,
    ) -> None: ...
    async def rule_set_history(self, limit: int = 10) -> list[dict[str, Any]]: ...
    async def rule_set_files(self, version: str) -> dict[str, str] | None: ...


class KeyStore(Protocol):
    """API keys and pairing codes (store/access.py)."""

    async def add_key(
        self,
        *,
        name: str,
        sha256: str,
        scopes: Sequence[str],
        leader_id: str | None,
        now: datetime,
        created_by: str,
    ) -> KeyRow: ...
    async def key_by_hash(self, sha256: str) -> KeyRow | None: ...
    async def list_keys(self) -> list[KeyRow]: ...
    async def revoke_key(self, key_id: str, *, now: datetime, by: str) -> Revoked | None: ...
    async def touch_keys(self, used: dict[str, datetime]) -> None: ...
    async def add_pairing(
        self, *, sha256: str, leader_id: str, now: datetime, expires_at: datetime, created_by: str
    ) -> Pairing: ...
    async def redeem_pairing(
        self, *, sha256: str, now: datetime, key_sha256: str, name: str | None
    ) -> tuple[Pairing, KeyRow] | None: ...


class Health(Protocol):
    """Whether the database answers."""

    async def ping(self) -> None: ...


class PipelineStore(ReportStore, GroupStore, Protocol):
    """What the pipeline does to the data: reports in, groups flushed, old rows forgotten."""

    async def forget(
        self, *, closed_before: datetime, disabled_before: datetime
    ) -> tuple[int, int]: ...
