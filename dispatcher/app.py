"""Composition root: settings in, a running service out.

The one place that wires store, rules, push channel, pipeline, scheduler and web app.
Tests build the same service with a different clock or settings; nothing is monkey-patched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.engine import make_url

from dispatcher.clock import Clock, system_clock
from dispatcher.feed import FeedHub
from dispatcher.incidents import MergeRule
from dispatcher.metrics import Metrics
from dispatcher.notify.base import Channel
from dispatcher.notify.console import ConsoleChannel
from dispatcher.notify.outbox import Delivery
from dispatcher.notify.webhook import WebhookChannel
from dispatcher.notify.webpush import VAPID_KEY_NAME, Vapid, WebPushChannel, new_vapid_pem
from dispatcher.pipeline import Pipeline
from dispatcher.rules.live import LiveRules
from dispatcher.rules.load import RuleSet, load_rules, rule_files
from dispatcher.scheduler import Scheduler
from dispatcher.settings import DEFAULT_WEBPUSH_SUBJECT, ConfigError, Settings
from dispatcher.store import db
from dispatcher.store.repo import Store
from dispatcher.targets import receivers_by_route
from dispatcher.web import request_ids
from dispatcher.web.access import ACCESS, Access, add_access_routes, record_uses
from dispatcher.web.auth import REFUSED_REASON, KeyGuessing, KeyRing, auth_middleware
from dispatcher.web.desk import Desk, add_desk
from dispatcher.web.desk.sessions import Sessions, cookie_auth
from dispatcher.web.devices import add_device_routes
from dispatcher.web.groups import add_group_routes
from dispatcher.web.health import add_health_routes
from dispatcher.web.incidents import add_incident_routes
from dispatcher.web.leaders import add_leader_routes
from dispatcher.web.openapi import add_openapi_route
from dispatcher.web.operations import add_operation_routes
from dispatcher.web.problems import problem_middleware
from dispatcher.web.pwa import add_app_routes
from dispatcher.web.reports import add_report_routes
from dispatcher.web.rules import add_rules_routes
from dispatcher.web.services import (
    CHANNELS,
    CLOCK,
    DEVICES,
    GROUPS,
    HEALTH,
    INTAKE,
    KEYS,
    METRICS,
    OUTBOX,
    REPORTS,
    RULE_SETS,
    RULES,
    SILENCES,
)
from dispatcher.web.silences import add_silence_routes
from dispatcher.web.unavailable import unavailable_middleware

log = logging.getLogger("dispatcher")

KEY_USES_EVERY = 60.0  # seconds between writes of API keys' last use


@dataclass
class Service:
    settings: Settings
    store: Store
    rules: LiveRules
    channel: Channel
    pipeline: Pipeline
    scheduler: Scheduler
    migrated: tuple[str | None, str | None]
    webpush: WebPushChannel
    stored_keys: int = 0  # keys in the database, not revoked, at start

    async def close(self) -> None:
        await self.scheduler.stop()
        for channel in self.pipeline.delivery.channels.values():
            await channel.close()
        await self.store.close()

    def banner(self, url: str) -> list[str]:
        """What the service says at start: where it listens, what it loaded, how it pushes."""
        rules = self.rules.current
        storage = make_url(self.settings.storage.url)
        before, after = self.migrated
        keys = len(self.settings.auth.keys) + self.stored_keys
        lines = [
            f"dispatcher listening on {url}",
            f"rules: {', '.join(str(f) for f in rules.files)} (version {rules.version}: "
            f"{len(rules.regions)} regions, {len(rules.teams)} teams)",
            f"push: {self.channel.describe()}",
            f"push: {self.webpush.describe()}",
            *(
                f"fallback: {c.describe()}"
                for c in self.pipeline.delivery.channels.values()
                if c is not self.channel and c is not self.webpush
            ),
            f"store: {storage.render_as_string(hide_password=True)} (schema {after}"
            + ("" if before == after else f", migrated from {before or 'an empty database'}")
            + ")",
            f"auth: {keys} API key{'s' if keys != 1 else ''}"
            + (
                f" ({len(self.settings.auth.keys)} in the config, {self.stored_keys} in the "
                "database)"
                if keys
                else " - every write will be refused; see `dispatcher keys new`"
            ),
        ]
        if self.settings.push.webpush.subject == DEFAULT_WEBPUSH_SUBJECT:
            lines.append(
                f"push warning: push.webpush.subject is the default {DEFAULT_WEBPUSH_SUBJECT}, "
                "which Apple's push service refuses (Safari, iPhones); set a mailto: or https: "
                "URL on a real domain where push services can reach the operator"
            )
        lines.extend(f"rules warning: {w}" for w in rules.warnings)
        return lines


async def choose_channel(settings: Settings) -> Channel:
    credentials = settings.fcm_credentials()
    if credentials is None:
        return ConsoleChannel(
            "no FCM credentials: set push.fcm.credentials or GOOGLE_APPLICATION_CREDENTIALS"
        )
    from dispatcher.notify.fcm import FcmChannel

    try:
        return await FcmChannel.create(
            str(credentials),
            endpoint=settings.push.fcm.endpoint,
            http_timeout=settings.push.fcm.timeout,
            connections=settings.push.fcm.connections,
        )
    except (OSError, ValueError) as exc:
        raise ConfigError([f"push.fcm.credentials: cannot use {credentials}: {exc}"]) from exc


async def webpush_channel(settings: Settings, store: Store, clock: Clock) -> WebPushChannel:
    """The Web Push channel, with the VAPID key kept in the database: made on the first
    start, read on every later one, never replaced (subscriptions are bound to it)."""
    pem = await store.keep_service_key(VAPID_KEY_NAME, new_vapid_pem(), now=clock())
    conf = settings.push.webpush
    try:
        vapid = Vapid(pem, conf.subject)
        vapid.header("https://fcm.googleapis.com", time.time())  # a subject py-vapid takes
    except ValueError as exc:
        raise ConfigError([f"push.webpush.subject: cannot sign VAPID claims: {exc}"]) from exc
    return WebPushChannel(
        vapid,
        allowed_origins=conf.allowed_origins,
        timeout=conf.timeout,
        connections=conf.connections,
    )


async def build(
    settings: Settings, *, clock: Clock = system_clock, channel: Channel | None = None
) -> Service:
    """Open the store (migrating it), load the rules, choose the push channel."""
    rules_path = Path(settings.rules.path)
    live = LiveRules(await asyncio.to_thread(load_rules, rules_path), rules_path, clock())
    await live.remember_files()
    engine = db.create_engine(
        settings.storage.url, sqlite_synchronous=settings.storage.sqlite_synchronous
    )
    try:
        migrated = await db.upgrade(engine)
    except Exception:
        await engine.dispose()
        raise
    store = Store(
        engine,
        merge=MergeRule(
            settings.incidents.merge_radius_m,
            settings.incidents.merge_window,
            settings.incidents.anchor_radius_m,
        ),
        writer=db.create_writer(
            settings.storage.url, sqlite_synchronous=settings.storage.sqlite_synchronous
        ),
        reader=db.create_reader(
            settings.storage.url, sqlite_synchronous=settings.storage.sqlite_synchronous
        ),
        max_waiting_reports=settings.storage.max_waiting_reports,
    )
    # SQLite: pushes a killed service had claimed go out now, not when their lease ends.
    freed = await store.free_dead_claims()
    if freed:
        log.warning("freed %d outbox claims left by a service that stopped while sending", freed)

    async def record(ruleset: RuleSet, how: str, at: datetime) -> None:
        # The files as applied, kept for the desk's diff of two versions.
        files = await asyncio.to_thread(rule_files, rules_path)
        await store.record_rule_set(
            version=ruleset.version, sha256=ruleset.sha256, applied_at=at, how=how, files=files
        )
        # A route the edit gave another receiver: its open groups go to the new one (at
        # start-up too: the service may have been down while the rules were edited).
        moved = await store.hand_over_groups(
            receivers_by_route(ruleset), now=at, rules_version=ruleset.version
        )
        for m in moved:
            log.info("route %s now alerts %s, not %s: group %s handed over as group %s",
                     m.route_id, m.new_receiver, m.old_receiver, m.old_id, m.new_id)  # fmt: skip

    live.on_applied = record
    await record(live.current, live.how, live.loaded_at)
    try:
        webpush = await webpush_channel(settings, store, clock)
        if channel is None:
            channel = await choose_channel(settings)
    except Exception:
        await store.close()
        raise
    metrics = Metrics()
    webhooks = [
        WebhookChannel(w.name, w.url, w.secret.get_secret_value(), timeout=w.timeout)
        for w in settings.push.webhooks
    ]
    delivery = Delivery(
        store,
        channel,
        clock=clock,
        metrics=metrics,
        fallbacks=webhooks,
        others=[webpush],
        fallback_of=lambda leader: live.current.fallback_of(leader),
        max_attempts=settings.push.max_attempts,
        retry_base=settings.push.retry_base,
        retry_max=settings.push.retry_max,
    )
    pipeline = Pipeline(
        metrics=metrics,
        store=store,
        rules=live,
        channel=channel,
        delivery=delivery,
        clock=clock,
        display_tz=ZoneInfo(settings.alerts.timezone),
        feed=FeedHub(),
        # Past twice the merge window a report that occurred when it arrives joins no incident.
        settle_after=2 * settings.incidents.merge_window,
    )
    scheduler = Scheduler(
        pipeline.tick,
        settings.scheduler.tick,
        watch=(lambda: live.reload_if_changed(clock)) if settings.rules.watch else None,
        retention=(
            lambda: pipeline.forget(
                delivery_records=settings.retention.delivery_records,
                disabled_devices=settings.retention.disabled_devices,
            ),
            settings.retention.every,
        ),
        observe=metrics.tick_seconds.observe,
    )
    stored_keys = sum(1 for k in await store.list_keys() if k.revoked_at is None)
    return Service(
        settings, store, live, channel, pipeline, scheduler, migrated, webpush, stored_keys
    )


def make_app(service: Service) -> web.Application:
    server = service.settings.server
    ring = KeyRing(service.settings.auth.keys, service.store.key_by_hash)
    pipeline = service.pipeline
    hub = pipeline.feed if pipeline.feed is not None else FeedHub()
    desk = Desk(keys=ring, sessions=Sessions(), hub=hub, tz=pipeline.display_tz)
    refusals = pipeline.metrics.refusals.labels(REFUSED_REASON)
    guessing = KeyGuessing(tuple(server.trusted_proxies), pipeline.clock, refusals.inc)
    app = web.Application(
        client_max_size=server.max_body_bytes,
        middlewares=[
            problem_middleware,
            unavailable_middleware(service.pipeline.metrics),
            auth_middleware(ring, cookie_auth(ring, desk.sessions, pipeline.clock), guessing),
        ],
    )
    # Each service on its own key (web/services.py): handlers take only what they use.
    store = service.store
    app[INTAKE] = pipeline  # accepting reports: the one thing handlers ask the pipeline
    app[RULES] = service.rules
    app[CLOCK] = service.pipeline.clock
    app[METRICS] = service.pipeline.metrics
    app[CHANNELS] = service.pipeline.delivery.channels
    app[REPORTS] = app[GROUPS] = store
    app[OUTBOX] = app[DEVICES] = app[SILENCES] = app[RULE_SETS] = app[KEYS] = app[HEALTH] = store
    app[ACCESS] = Access(ring, server.base_url(), tuple(server.trusted_proxies))
    request_ids.install(app)
    add_report_routes(app)
    add_incident_routes(app)
    add_health_routes(app)
    add_device_routes(app)
    add_rules_routes(app)
    add_operation_routes(app)
    add_group_routes(app)
    add_silence_routes(app)
    add_leader_routes(app)
    add_app_routes(app)
    add_access_routes(app)
    add_desk(app, desk)
    add_openapi_route(app)  # last: it describes the routes above

    async def key_uses_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        # When keys were last used: written once a minute, never on a request's path.
        async def loop() -> None:
            while True:
                await asyncio.sleep(KEY_USES_EVERY)
                try:
                    await record_uses(app)
                except Exception:
                    log.exception("could not record when API keys were last used")

        task = asyncio.get_running_loop().create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await record_uses(app)

    app.cleanup_ctx.append(key_uses_ctx)

    async def scheduler_ctx(_app: web.Application):  # type: ignore[no-untyped-def]
        service.scheduler.start()
        yield
        await service.scheduler.stop()
        await service.pipeline.drain()

    app.cleanup_ctx.append(scheduler_ctx)
    return app
