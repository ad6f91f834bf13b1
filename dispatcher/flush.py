"""A due group's flush, decided: what the group owes its leaders now, and what to write.

Pure: the group, what was read for it, the rules and `now` in; a decision out. The pipeline
(`Pipeline._flush`) reads, asks `plan` and then `decide`, and carries the answer out:

- `Settle`: nothing to tell (woken with nothing due, or nothing new); sleep until `wakeup`.
- `Hold`: a silence or an inhibition holds the group; look again at `until`.
- `Send`: write the update (`record`) and its notifications (`outbox`), next wake at `wakeup`.
- `Lost`: another flusher got there first, or a report joined meanwhile: look again.
- `ReadPushes`: an inhibit rule targets the group; read these routes' recent pushes and ask
  again (read only then, so a flush with nothing to tell costs no more reads).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

from dispatcher.group import Action, Life, Summary, due_action, next_wakeup
from dispatcher.model import LOCALES, UNASSIGNED, Leader
from dispatcher.notify.render import NEUTRAL, Rendered, render
from dispatcher.rules.load import RuleSet
from dispatcher.silence import first_muting
from dispatcher.store.rows import DeviceRow, FlushReads, GroupRow, OutboxItem

DEFAULT_TTL = timedelta(hours=1)  # for a group whose route is gone from the rules
WEB_CHANNEL = "webpush"  # the channel of devices of platform "web" (notify/webpush.py)
MAX_IDS_IN_PAYLOAD = 20  # 20 ids of 32 characters keep the data payload far below FCM's 4 KB

KINDS: dict[Action, str] = {
    "update": "update",
    "remind": "reminder",
    "close": "closed",
    "escalate": "escalated",
}


@dataclass(frozen=True, slots=True)
class Settle:
    wakeup: datetime | None


@dataclass(frozen=True, slots=True)
class Hold:
    until: datetime
    why: str  # for the log: "silence <id>" or "inhibition"


@dataclass(frozen=True, slots=True)
class ReadPushes:
    """An inhibit rule targets the group: `decide` needs the recent pushes of these routes
    (since `since`) to go on. Read only when it comes to that, as a flush that has nothing
    to tell, or is silenced, never needs them."""

    routes: list[str]
    since: datetime


Push = tuple[str, tuple[tuple[str, str], ...], datetime]  # (route, labels, pushed at)


@dataclass(frozen=True, slots=True)
class Lost:
    why: str


@dataclass(frozen=True, slots=True)
class Send:
    action: Action
    kind: str  # update, reminder, closed, escalated
    summary: Summary  # what the update says (the tally is told of it once written)
    record: dict[str, Any]  # the update as stored, with its texts in every language
    outbox: tuple[OutboxItem, ...]
    wakeup: datetime | None
    warnings: tuple[str, ...] = ()  # leaders not reached, receivers without leaders

    @property
    def close(self) -> bool:
        return self.action == "close"

    @property
    def escalate(self) -> bool:
        return self.action == "escalate"


Decision = Settle | Hold | Lost | Send | ReadPushes


@dataclass(frozen=True, slots=True)
class Plan:
    """What a due group's flush is about, before anything is read."""

    group: GroupRow
    action: Action
    leaders: tuple[Leader, ...]  # who is told: the receiver's, or the team escalated to
    escalated_from: str | None  # the team's name, when escalating
    after: Life  # the group's timers once the update is written
    today: tuple[frozenset[str], datetime] | None  # where and since when "today" counts

    @property
    def leader_ids(self) -> list[str]:
        return [leader.id for leader in self.leaders]


def plan(group: GroupRow, rules: RuleSet, now: datetime, tz: tzinfo) -> Plan | Settle:
    """What the group owes now, and whom; `Settle` when nothing is due."""
    action = due_action(group.life, now)
    if action is None:
        # Woken with nothing due (acknowledged since its reminder was set): sleep on.
        return Settle(next_wakeup(group.life))
    # Once this update is written, the group next wakes for a reminder or its closing.
    after = replace(group.life, pending=False, next_update_at=None, last_flush_at=now)
    leaders = rules.leaders_of(group.receiver)
    escalated_from = None
    if action == "escalate":
        after = replace(group.life, escalated=True)
        team = rules.teams.get(group.receiver)
        escalated_from = team.name if team is not None else group.receiver
        leaders = rules.leaders_of(team.escalate_to) if team and team.escalate_to else ()
    return Plan(group, action, leaders, escalated_from, after, today_scope(group, rules, now, tz))


def lost(plan: Plan, read: FlushReads | None) -> Lost | None:
    """Whether the read shows the group moved on since it was found due."""
    group = plan.group
    if read is None or read.group.seq != group.seq or read.group.closed_at is not None:
        return Lost("another flusher got there first")
    if plan.action != "update" and read.group.last_report_at != group.last_report_at:
        return Lost("a report joined: look at the group again")
    return None


def inhibited_until(
    group: GroupRow,
    summary: Summary,
    rules: RuleSet,
    now: datetime,
    pushes: Sequence[Push],
) -> datetime | None:
    """The end of the longest inhibition over this group: a source group (of a rule that
    targets this group's route) pushed within the rule's `for`, in a region that holds this
    group's region. `pushes` are (route, labels, pushed at) of the rules' source routes."""
    until: datetime | None = None
    paths = region_paths(group, summary, rules)
    for rule in rules.inhibitions:
        if group.route_id not in rule.target_routes:
            continue
        for route_id, labels, pushed_at in pushes:
            if route_id not in rule.source_routes or pushed_at < now - rule.for_:
                continue
            region = dict(labels).get("region")
            end = pushed_at + rule.for_
            if end > now and region is not None and paths and all(region in p for p in paths):
                until = end if until is None else max(until, end)
    return until


def inhibition_sources(group: GroupRow, rules: RuleSet) -> tuple[list[str], timedelta] | None:
    """The source routes (and how far back) whose pushes may inhibit this group; None when
    no rule targets its route, so nothing need be read."""
    rules_over = [r for r in rules.inhibitions if group.route_id in r.target_routes]
    if not rules_over:
        return None
    sources = sorted({route for r in rules_over for route in r.source_routes})
    return sources, max(r.for_ for r in rules_over)


def decide(
    plan: Plan,
    read: FlushReads,
    summary: Summary,
    *,
    rules: RuleSet,
    now: datetime,
    tz: tzinfo,
    channel: str,
    channels: Collection[str],
    pushes: Sequence[Push] | None = None,
) -> Settle | Hold | Send | ReadPushes:
    """What the flush writes, given what was read (`read`) and counted (`summary`).

    `channel` is the phones' push channel's name, `channels` every channel the delivery
    stage has (a leader's fallback is used only if it is one of them). `pushes` are the
    recent pushes of the routes that may inhibit the group: when they are needed and not
    given, the answer is `ReadPushes`, saying which to read; ask again with them."""
    group, action, last = read.group, plan.action, read.last
    last_at = last.at if last is not None else None
    after = replace(plan.after, acked=plan.after.acked or bool(read.acks))
    new_acks = [a for a in read.acks if last_at is None or a.at > last_at]
    if action == "update" and not summary.changed and not new_acks:
        # E.g. a second sighting below the incident's figures: nothing new to tell.
        return Settle(next_wakeup(replace(after, last_flush_at=group.last_flush_at)))
    muted = first_muting(
        read.silences,
        now,
        route_id=group.route_id,
        receiver=group.receiver,
        region_paths=region_paths(group, summary, rules),
        kinds=[k for k, _ in summary.kinds],
    )
    if muted is not None:
        # Told when the silence ends, with whatever happened meanwhile.
        return Hold(muted.ends_at, f"silence {muted.id}")
    sources = inhibition_sources(group, rules) if action in ("update", "remind") else None
    if sources is not None:
        if pushes is None:
            return ReadPushes(sources[0], now - sources[1])
        until = inhibited_until(group, summary, rules, now, pushes)
        if until is not None:
            return Hold(until, "inhibition")
    kind = KINDS[action]
    acked_by = [
        (rules.leaders[a.leader_id].name if a.leader_id in rules.leaders else a.leader_id,
         a.responding)
        for a in new_acks
    ]  # fmt: skip
    warnings: list[str] = []
    if not plan.leaders:
        warnings.append(f"group {group.id}: receiver {group.receiver} has no leaders in the rules")
    route = rules.route(group.route_id)
    priority = "high" if route is not None and route.immediate else "normal"
    expires_at = now + (route.ttl if route is not None else DEFAULT_TTL)
    minimal = route is not None and route.payload == "minimal"
    data = {**payload(group, summary), "kind": kind}
    if minimal:
        data = {"group_id": group.id, "seq": str(group.seq + 1), "kind": kind}
    # Rendered in every language and kept with the update, for the app to fetch.
    rendered = {
        locale: render(
            summary,
            place=place(group, summary, rules, locale),
            locale=locale,
            tz=tz,
            kind=kind,
            acks=acked_by,
            quiet=group.close_after,
            escalated_from=plan.escalated_from,
            waited=group.escalate_after,
            today=read.today,
            templates=rules.templates.get(locale),
        )
        for locale in LOCALES
    }
    record = {
        **summary.to_json(),
        "kind": kind,
        "texts": {loc: {"title": r.title, "body": r.body} for loc, r in rendered.items()},
    }

    outbox, unreached = fan_out(
        group,
        plan.leaders,
        read.devices,
        rendered,
        data=data,
        minimal=minimal,
        priority=priority,
        expires_at=expires_at,
        rules=rules,
        channel=channel,
        channels=channels,
    )
    warnings.extend(unreached)
    return Send(action, kind, summary, record, tuple(outbox), next_wakeup(after), tuple(warnings))


def fan_out(
    group: GroupRow,
    leaders: Sequence[Leader],
    devices: Sequence[DeviceRow],
    rendered: Mapping[str, Rendered],
    *,
    data: dict[str, str],
    minimal: bool,
    priority: str,
    expires_at: datetime,
    rules: RuleSet,
    channel: str,
    channels: Collection[str],
) -> tuple[list[OutboxItem], list[str]]:
    """One push per phone of each leader, in the phone's language; a leader with no phone
    gets the push on their fallback channel, or one kept as failed (so operators see who
    was not reached: the second list says so)."""

    web = WEB_CHANNEL if WEB_CHANNEL in channels else channel

    def item(leader_id: str, device_id: int | None, locale: str, via: str) -> OutboxItem:
        text = rendered.get(locale, rendered["en"])
        title, body = NEUTRAL.get(locale, NEUTRAL["en"]) if minimal else (text.title, text.body)
        return OutboxItem(
            leader_id=leader_id,
            device_id=device_id,
            channel=via,
            title=title,
            body=body,
            # Web Push builds its own payload from the data: it must know to leave the text
            # out (FCM's notification shows the neutral text, as before).
            data={**data, "minimal": "true"} if minimal and via == WEB_CHANNEL else data,
            collapse_key=group.id,
            priority=priority,
            expires_at=expires_at,
        )

    outbox: list[OutboxItem] = []
    unreached: list[str] = []
    for leader in leaders:
        own = [d for d in devices if d.leader_id == leader.id]
        fallback = rules.fallback_of(leader.id)
        if not own and fallback is not None and fallback in channels:
            outbox.append(item(leader.id, None, leader.locale, fallback))
        elif not own:
            unreached.append(
                f"leader {leader.id} (receiver {group.receiver}) has no registered device"
            )
            outbox.append(item(leader.id, None, leader.locale, channel))
        # A device's platform decides its channel: browsers get Web Push, phones FCM.
        outbox.extend(
            item(leader.id, d.id, d.locale, web if d.platform == "web" else channel) for d in own
        )
    return outbox, unreached


def today_scope(
    group: GroupRow, rules: RuleSet, now: datetime, tz: tzinfo
) -> tuple[frozenset[str], datetime] | None:
    """Where and since when "today: N" counts live incidents: the group's region and below,
    since midnight where the leaders are."""
    region = dict(group.labels).get("region")
    if region is None or region == UNASSIGNED:
        return None
    local = now.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return rules.subtree(region), midnight


def region_paths(group: GroupRow, summary: Summary, rules: RuleSet) -> list[tuple[str, ...]]:
    """The region the group stands for (its label), or else its incidents' regions."""
    labels = dict(group.labels)
    regions = [labels["region"]] if "region" in labels else list(summary.regions)
    return [rules.region_path(r) for r in regions]


def place(group: GroupRow, summary: Summary, rules: RuleSet, locale: str) -> str:
    region = dict(group.labels).get("region") or next(iter(summary.regions), None)
    return rules.region_name(region if region is not None else UNASSIGNED, locale)


def payload(group: GroupRow, summary: Summary) -> dict[str, str]:
    changed = summary.changed_incidents
    return {
        "group_id": group.id,
        "seq": str(group.seq + 1),
        "incidents": ",".join(changed[:MAX_IDS_IN_PAYLOAD]),
        "more_incidents": str(max(0, len(changed) - MAX_IDS_IN_PAYLOAD)),
    }
