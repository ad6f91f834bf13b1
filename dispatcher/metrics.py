"""What the service counts, for Prometheus: reports taken, pushes sent, failed, retried.

One `Metrics` per service, on its own registry (so two services in one process, as in the
tests, do not mix their counts). The pipeline and delivery stages count as they go; the
state of the outbox and the rules in force are read at each scrape (`web/operations.py`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reports = Counter(
            "dispatcher_reports",
            "Reports received, by outcome (created, duplicate, stale, conflict)",
            ["outcome"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "dispatcher_refused_requests",
            "Requests refused with Retry-After, nothing stored: overload (503, a bounded queue "
            "was full), store (503/507, the database or its disk unavailable) or wrong_keys "
            "(429, too many unknown API keys from the client's address)",
            ["reason"],
            registry=self.registry,
        )
        self.invalid_reports = Counter(
            "dispatcher_reports_invalid",
            "Reports refused as invalid (422), nothing stored",
            registry=self.registry,
        )
        self.updates = Counter(
            "dispatcher_group_updates",
            "Alert group updates written to the outbox",
            registry=self.registry,
        )
        self.pushes = Counter(
            "dispatcher_push_attempts",
            "Push attempts by result: sent, retry (will be tried again), failed (for good)",
            ["channel", "result"],
            registry=self.registry,
        )
        self.push_errors = Counter(
            "dispatcher_push_errors",
            "Push attempts that did not succeed, by the channel's error code",
            ["channel", "code"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "dispatcher_push_batch_seconds",
            "Time to send one batch of pushes through a channel",
            ["channel"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.tick_seconds = Histogram(
            "dispatcher_tick_seconds",
            "Time one scheduler tick took (due updates flushed, the outbox delivered); one "
            "longer than the tick interval delays the next",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.outbox = Gauge(
            "dispatcher_notifications",
            "Notifications in the outbox by status (read at each scrape)",
            ["status"],
            registry=self.registry,
        )
        self.rules_info = Gauge(
            "dispatcher_rules_info",
            "The rule set in force (value 1), by version",
            ["version"],
            registry=self.registry,
        )
        self.rules_errors = Gauge(
            "dispatcher_rules_last_reload_errors",
            "Errors in the last refused rules edit (0 when the last attempt applied)",
            registry=self.registry,
        )
