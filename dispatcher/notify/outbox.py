"""Delivery: send what the outbox holds, record what became of each push, retry the rest.

The outbox rows were written with the update that caused them (which also marked older
pending updates of the group for the same devices superseded); this stage claims the rows
due, closes those past their time to live as expired, and moves the rest from pending to
sent or failed, with exponential backoff and equal jitter between attempts (`backoff`). A
token the service rejects for good disables its device; a push that cannot reach a leader's
phone goes to the leader's fallback channel, if one is set. A push is never dropped
silently: it ends as sent, superseded, expired, or failed with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from dispatcher.clock import Clock
from dispatcher.metrics import Metrics
from dispatcher.notify.base import Channel, Push, PushResult
from dispatcher.store.ports import OutboxStore
from dispatcher.store.rows import Outcome, PendingPush

log = logging.getLogger("dispatcher.delivery")


def backoff(
    attempt: int,
    *,
    base: timedelta,
    cap: timedelta,
    retry_after: float | None = None,
    rand: random.Random | None = None,
) -> timedelta:
    """Delay before attempt `attempt + 1`: equal jitter on an exponential ceiling (at least
    half the ceiling, so a retry never comes back at once; at random up to all of it, so
    many phones' retries spread apart), never less than what the service asked for with
    Retry-After."""
    ceiling = min(cap.total_seconds(), base.total_seconds() * (2 ** max(0, attempt - 1)))
    delay = (rand or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=delay)


class Delivery:
    def __init__(
        self,
        store: OutboxStore,
        channel: Channel,
        *,
        clock: Clock,
        max_attempts: int,
        retry_base: timedelta,
        retry_max: timedelta,
        batch: int = 500,
        lease: timedelta = timedelta(minutes=2),
        metrics: Metrics | None = None,
        fallbacks: Sequence[Channel] = (),
        others: Sequence[Channel] = (),
        fallback_of: Callable[[str], str | None] = lambda _leader: None,
    ) -> None:
        self.store = store
        self.channel = channel
        self.clock = clock
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.batch = batch
        self.lease = lease
        self.metrics = metrics or Metrics()
        # The channels a push can be queued for: the phones' (`channel`), the other device
        # platforms' (`others`: webpush for platform "web") and the fallbacks.
        self.channels: dict[str, Channel] = {c.name: c for c in [*fallbacks, *others]}
        self.channels[channel.name] = channel
        self.device_channels = {channel.name, *(c.name for c in others)}
        self.fallback_of = fallback_of  # leader id -> the channel to use when the phone fails

    async def run_once(self, *, rounds: int = 20) -> int:
        """Send the pushes due now, once each, `batch` at a time for at most `rounds`
        batches (then the tick lets the flush run, and the next tick goes on); return how
        many were attempted.

        Pushes are claimed in the database first, so a tick, an immediate push and a second
        service instance can all deliver at once without sending anything twice."""
        attempted = 0
        for _ in range(rounds):
            due = await self.store.claim_pushes(self.clock(), lease=self.lease, limit=self.batch)
            attempted += await self.deliver(due)
            if len(due) < self.batch:
                break
        return attempted

    async def deliver(self, due: list[PendingPush]) -> int:
        """Send pushes this instance has claimed and record what became of each. A push that
        cannot reach its leader's phone for good goes to the leader's fallback channel, if
        the rules name one, in the same transaction as its failure."""
        if not due:
            return 0
        now = self.clock()
        by_ref = {p.id: p for p in due}
        outcomes: list[Outcome] = []
        by_channel: dict[str, list[Push]] = defaultdict(list)
        for p in due:
            channel = self._channel_for(p.channel)
            if p.token is None and channel.name in self.device_channels:
                # Written for a leader with no registered device: kept so operators see it.
                outcomes.append(Outcome(p.id, "failed", error="no registered device"))
                self._count(p.channel, "failed", "NO_DEVICE")
                continue
            by_channel[channel.name].append(
                Push(
                    ref=p.id,
                    token=p.token or "",
                    platform=p.platform or "android",
                    title=p.title,
                    body=p.body,
                    collapse_key=p.collapse_key,
                    data=p.data,
                    priority="high" if p.priority == "high" else "normal",
                    # What is left of its time to live: a retry does not start it again.
                    ttl=max(p.expires_at - now, timedelta(seconds=1)) if p.expires_at else None,
                    leader=p.leader_id,
                    p256dh=p.p256dh or "",
                    auth=p.auth or "",
                )
            )
        results = await asyncio.gather(
            *(self._send(self.channels[name], pushes) for name, pushes in by_channel.items())
        )
        # A retry is timed from the answer, not from the start of the batch: a batch that
        # waited on a slow send must not come back before the Retry-After FCM gave.
        answered = self.clock()
        for result in (r for batch in results for r in batch):
            outcome = self._outcome(by_ref[result.ref], result, answered)
            outcomes.append(outcome)
        fallbacks = {}
        for o in outcomes:
            if o.status != "failed":
                continue
            pending = by_ref[o.id]
            fallback = self.fallback_of(pending.leader_id)
            if fallback is not None and fallback != pending.channel:
                if fallback in self.channels:
                    fallbacks[o.id] = fallback
                else:
                    log.error(
                        "leader %s's fallback channel %r is not configured (push.webhooks)",
                        pending.leader_id,
                        fallback,
                    )
        await self.store.record_outcomes(
            outcomes,
            now=self.clock(),
            device_of={p.id: p.device_id for p in due},
            fallbacks=fallbacks,
        )
        sent = sum(1 for o in outcomes if o.status == "sent")
        if sent != len(outcomes):
            log.warning(
                "delivery: %d sent, %d not sent of %d due; %d passed to a fallback channel",
                sent,
                len(outcomes) - sent,
                len(outcomes),
                len(fallbacks),
            )
        return len(due)

    def _channel_for(self, name: str) -> Channel:
        channel = self.channels.get(name)
        if channel is None:
            # Queued for a channel this instance no longer has (config changed): send it on
            # the active one rather than leave it pending for ever.
            log.warning("a push queued for %s goes out on %s", name, self.channel.name)
            return self.channel
        return channel

    async def _send(self, channel: Channel, pushes: list[Push]) -> list[PushResult]:
        with self.metrics.send_seconds.labels(channel.name).time():
            results = await channel.send(pushes)
        for r in results:
            result = "sent" if r.ok else "retry" if r.retryable else "failed"
            self._count(channel.name, result, None if r.ok else r.error_code or "error")
        return results

    def _count(self, channel: str, result: str, error: str | None) -> None:
        self.metrics.pushes.labels(channel, result).inc()
        if error is not None:
            self.metrics.push_errors.labels(channel, error).inc()

    def _outcome(self, pending: PendingPush, result: PushResult, now: datetime) -> Outcome:
        if result.ok:
            return Outcome(pending.id, "sent", message_name=result.message_name)
        error = f"{result.error_code or 'error'}: {result.detail}"[:500]
        attempts = pending.attempts + 1
        if result.retryable and attempts < self.max_attempts:
            delay = backoff(
                attempts, base=self.retry_base, cap=self.retry_max, retry_after=result.retry_after
            )
            return Outcome(pending.id, "pending", error=error, next_attempt_at=now + delay)
        log.error(
            "push %d to leader %s failed for good after %d attempts: %s",
            pending.id,
            pending.leader_id,
            attempts,
            error,
        )
        return Outcome(pending.id, "failed", error=error, disable_device=result.disable_device)
