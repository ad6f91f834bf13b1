"""The store's rows as plain values: what the store hands the pipeline, the delivery stage
and the web handlers, and what they hand it to write.

No SQLAlchemy here, so that pure decisions (`dispatcher.flush`) can take and make rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from dispatcher.group import Life
from dispatcher.model import Point, Report
from dispatcher.silence import Silence
from dispatcher.surge import SurgeState

if TYPE_CHECKING:
    from dispatcher.store.report_row import StoredReport


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: str
    kind: str
    region: str
    location: Point | None
    occurred_at: datetime
    named: bool
    reports: tuple[StoredReport, ...]  # every revision of every report that joined it


@dataclass(frozen=True, slots=True)
class GroupRow:
    id: str
    route_id: str
    labels: tuple[tuple[str, str], ...]
    receiver: str
    seq: int
    pending: bool
    next_flush_at: datetime | None
    last_flush_at: datetime | None
    rules_version: str
    last_report_at: datetime | None = None
    repeat_interval: timedelta | None = None
    close_after: timedelta | None = None
    acked_at: datetime | None = None
    closed_at: datetime | None = None
    created_at: datetime | None = None
    escalate_after: timedelta | None = None
    escalated_at: datetime | None = None
    group_interval: timedelta = timedelta(0)
    # Closed because the rules gave its route another receiver: why, and the group that
    # took over its reports; or the group this one took over from.
    closed_reason: str | None = None
    handed_over_to: str | None = None
    took_over_from: str | None = None
    surge_open_at: datetime | None = None
    surge_told: int | None = None
    recount: int = 0  # raised when an incident of its reports is merged into another

    @property
    def surge_state(self) -> SurgeState:
        return SurgeState(self.surge_open_at, self.surge_told, self.last_flush_at)

    @property
    def life(self) -> Life:
        return Life(
            pending=self.pending,
            next_update_at=self.next_flush_at if self.pending else None,
            last_flush_at=self.last_flush_at,
            last_report_at=self.last_report_at,
            repeat_interval=self.repeat_interval,
            close_after=self.close_after,
            acked=self.acked_at is not None,
            opened_at=self.created_at,
            escalate_after=self.escalate_after,
            escalated=self.escalated_at is not None,
        )


@dataclass(frozen=True, slots=True)
class Ack:
    leader_id: str
    at: datetime
    responding: bool
    note: str | None


@dataclass(frozen=True, slots=True)
class OpenGroup:
    """An open group as the desk lists it."""

    group: GroupRow
    last_update_at: datetime | None
    acks: tuple[Ack, ...]
    regions: tuple[str, ...]  # of its reports
    kinds: tuple[str, ...]
    reports: int


@dataclass(frozen=True, slots=True)
class LeaderGroup:
    """An open alert group as a leader's app shows it (Store.leader_groups)."""

    group: GroupRow
    latest: tuple[int, datetime, dict[str, Any]] | None  # its last update: seq, time, summary
    incidents: list[IncidentRow]  # the newest, with the group's own reports of each
    incidents_total: int  # how many the group holds
    acks: list[Ack]


class LastUpdate(NamedTuple):
    """A group's last update, as a flush compares against it."""

    seq: int
    at: datetime
    # Its per-incident counts; None when the caller's tally was told of this update (and so
    # holds them already), which spares reading and decoding a big group's whole state.
    state: dict[str, list[int]] | None


@dataclass(frozen=True, slots=True)
class FlushReads:
    """Everything a flush reads about a group, read together (Store.flush_reads)."""

    group: GroupRow
    reports: list[tuple[int, Report]]  # (row pk, report): new ones, or all if `whole`
    whole: bool  # `reports` holds every report of the group
    last: LastUpdate | None
    acks: list[Ack]
    silences: list[Silence]
    devices: list[DeviceRow]
    today: int | None


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: int
    leader_id: str
    token: str
    platform: str
    locale: str
    created_at: datetime
    updated_at: datetime
    p256dh: str | None = None  # a Web Push subscription's keys (platform "web")
    auth: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A notification to write, bound for one device of one leader."""

    leader_id: str
    device_id: int | None
    channel: str
    title: str
    body: str
    data: dict[str, str]
    collapse_key: str
    priority: str
    expires_at: datetime | None = None  # not sent after this (the route's ttl)


@dataclass(frozen=True, slots=True)
class PendingPush:
    id: int
    group_id: str
    seq: int
    leader_id: str
    device_id: int | None
    token: str | None
    platform: str | None
    channel: str
    title: str
    body: str
    data: dict[str, str]
    collapse_key: str
    priority: str
    attempts: int
    expires_at: datetime | None = None
    p256dh: str | None = None  # the device's Web Push keys, for channel "webpush"
    auth: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """What became of one notification of a group, as operators see it."""

    id: int
    seq: int
    leader_id: str
    device_id: int | None
    token: str | None  # the caller shows it redacted
    platform: str | None
    channel: str
    status: str
    attempts: int
    last_error: str | None
    message_name: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one delivery attempt."""

    id: int
    status: Literal["sent", "failed", "pending"]
    message_name: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    disable_device: bool = False
