"""A due group's flush, decided on plain values: settle, hold, or send what to whom."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher import flush
from dispatcher.group import GroupTally, Summary
from dispatcher.model import Report
from dispatcher.rules.load import RuleSet, load_rules
from dispatcher.silence import Silence
from dispatcher.store.rows import Ack, DeviceRow, FlushReads, GroupRow, LastUpdate
from tests.unit.test_group import report

RULES = Path(__file__).parents[1] / "testdata" / "rules-e2e"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
INHIBIT = """
inhibit:
  - name: mass-casualty-quiets-digests
    source: {routes: [mass-casualty]}
    target: {routes: [harim]}
    for: 30m
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    folder = tmp_path_factory.mktemp("rules")
    for name in ("regions.yaml", "routes.yaml", "teams.yaml"):
        shutil.copy(RULES / name, folder / name)
    with (folder / "routes.yaml").open("a") as routes:
        routes.write(INHIBIT)
    return load_rules(folder)


def harim(**changes: object) -> GroupRow:
    """A pending group of the harim route (receiver Harim Center, one leader), due now."""
    row = GroupRow(
        id="g1",
        route_id="harim",
        labels=(("region", "SY0703"),),
        receiver="harim-center",
        seq=0,
        pending=True,
        next_flush_at=NOW - timedelta(seconds=1),
        last_flush_at=None,
        rules_version="v1",
        last_report_at=NOW - timedelta(seconds=5),
        repeat_interval=timedelta(hours=1),
        close_after=timedelta(hours=3),
        created_at=NOW - timedelta(minutes=1),
        escalate_after=timedelta(minutes=30),
    )
    return GroupRow(**{**{f: getattr(row, f) for f in row.__slots__}, **changes})


PHONE = DeviceRow(7, "harim-lead-1", "tok", "android", "en", NOW, NOW)


def reads(
    group: GroupRow,
    *,
    devices: list[DeviceRow] | None = None,
    silences: list[Silence] | None = None,
    acks: list[Ack] | None = None,
    last: LastUpdate | None = None,
) -> FlushReads:
    return FlushReads(
        group=group,
        reports=[],
        whole=True,
        last=last,
        acks=acks or [],
        silences=silences or [],
        devices=[PHONE] if devices is None else devices,
        today=None,
    )


def summary_of(*reports: Report, previous: dict[str, list[int]] | None = None) -> Summary:
    tally = GroupTally()
    tally.add([(i + 1, r) for i, r in enumerate(reports)])
    return tally.summary(previous=previous or {}, previous_at=None)


def decide(
    rules: RuleSet, group: GroupRow, read: FlushReads, summary: Summary, **kw: object
) -> flush.Decision:
    planned = flush.plan(group, rules, NOW, UTC)
    assert isinstance(planned, flush.Plan)
    return flush.decide(
        planned, read, summary, rules=rules, now=NOW, tz=UTC, channel="fcm",
        channels=kw.pop("channels", ()), pushes=kw.pop("pushes", []), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_group_with_nothing_due_settles_until_its_next_wakeup(rules: RuleSet) -> None:
    later = NOW + timedelta(seconds=30)
    assert flush.plan(harim(next_flush_at=later), rules, NOW, UTC) == flush.Settle(later)


def test_a_new_report_is_sent_to_every_phone_of_the_receivers_leaders(rules: RuleSet) -> None:
    group = harim()
    decision = decide(rules, group, reads(group), summary_of(report("r1", killed=2)))
    assert isinstance(decision, flush.Send)
    assert decision.kind == "update"
    assert decision.close is False
    (item,) = decision.outbox
    assert (item.leader_id, item.device_id, item.channel) == ("harim-lead-1", 7, "fcm")
    assert item.data == {"group_id": "g1", "seq": "1", "incidents": "inc-r1",
                         "more_incidents": "0", "kind": "update"}  # fmt: skip
    assert item.priority == "normal"
    assert item.collapse_key == "g1"
    assert item.expires_at == NOW + timedelta(hours=1)
    assert item.title == decision.record["texts"]["en"]["title"]
    assert set(decision.record["texts"]) == {"ar", "en"}
    assert decision.record["totals"]["killed"] == 2
    # Next: a reminder after repeat_interval, nobody having acknowledged.
    assert decision.wakeup == NOW + timedelta(minutes=29)  # the escalation comes first
    assert decision.warnings == ()


def test_a_leader_without_a_phone_is_written_as_unreached_or_sent_by_the_fallback(
    rules: RuleSet,
) -> None:
    group = harim()
    unreached = decide(rules, group, reads(group, devices=[]), summary_of(report("r1")))
    assert isinstance(unreached, flush.Send)
    assert [(i.device_id, i.channel) for i in unreached.outbox] == [(None, "fcm")]
    assert unreached.warnings == (
        "leader harim-lead-1 (receiver harim-center) has no registered device",
    )
    by_sms = decide(rules, group, reads(group, devices=[]), summary_of(report("r1")),
                    channels=("sms",))  # fmt: skip
    assert isinstance(by_sms, flush.Send)
    assert [(i.device_id, i.channel) for i in by_sms.outbox] == [(None, "sms")]
    assert by_sms.warnings == ()


def test_an_update_with_nothing_new_settles_without_a_push(rules: RuleSet) -> None:
    group = harim(last_flush_at=NOW - timedelta(minutes=2), seq=1)
    r1 = report("r1", killed=2)
    told = dict(summary_of(r1).state)
    last = LastUpdate(1, NOW - timedelta(minutes=2), told)
    decision = decide(rules, group, reads(group, last=last), summary_of(r1, previous=told))
    # Nothing to tell: it sleeps until its escalation (opened a minute ago, 30 min).
    assert decision == flush.Settle(NOW + timedelta(minutes=29))
    # Settled before an inhibition matters: no pushes are asked for (none read).
    planned = flush.plan(group, rules, NOW, UTC)
    assert isinstance(planned, flush.Plan)
    unasked = flush.decide(planned, reads(group, last=last), summary_of(r1, previous=told),
                           rules=rules, now=NOW, tz=UTC, channel="fcm", channels=())  # fmt: skip
    assert unasked == decision


def test_a_silence_over_the_group_holds_it_until_the_silence_ends(rules: RuleSet) -> None:
    group = harim()
    ends = NOW + timedelta(hours=2)
    quiet = Silence("s1", frozenset({"SY07"}), frozenset(), frozenset(), frozenset(),
                    NOW - timedelta(hours=1), ends, "op", "drill", NOW)  # fmt: skip
    decision = decide(rules, group, reads(group, silences=[quiet]), summary_of(report("r1")))
    assert decision == flush.Hold(ends, "silence s1")


def test_a_recent_mass_casualty_push_in_the_region_inhibits_the_digest(rules: RuleSet) -> None:
    group = harim()
    assert flush.inhibition_sources(group, rules) == (["mass-casualty"], timedelta(minutes=30))
    # Asked without them, decide says which pushes it needs.
    planned = flush.plan(group, rules, NOW, UTC)
    assert isinstance(planned, flush.Plan)
    need = flush.decide(planned, reads(group), summary_of(report("r1")), rules=rules, now=NOW,
                        tz=UTC, channel="fcm", channels=())  # fmt: skip
    assert need == flush.ReadPushes(["mass-casualty"], NOW - timedelta(minutes=30))
    pushed = NOW - timedelta(minutes=10)
    above = [("mass-casualty", (("region", "SY07"),), pushed)]
    decision = decide(rules, group, reads(group), summary_of(report("r1")), pushes=above)
    assert decision == flush.Hold(pushed + timedelta(minutes=30), "inhibition")
    # Elsewhere, or too long ago, it does not.
    elsewhere = [("mass-casualty", (("region", "SY01"),), pushed)]
    assert isinstance(decide(rules, group, reads(group), summary_of(report("r1")),
                             pushes=elsewhere), flush.Send)  # fmt: skip
    old = [("mass-casualty", (("region", "SY07"),), NOW - timedelta(minutes=31))]
    assert isinstance(decide(rules, group, reads(group), summary_of(report("r1")),
                             pushes=old), flush.Send)  # fmt: skip


def test_an_unacknowledged_group_escalates_to_the_next_team(rules: RuleSet) -> None:
    told_at = NOW - timedelta(minutes=20)
    group = harim(pending=False, next_flush_at=None, last_flush_at=told_at, seq=1,
                  created_at=NOW - timedelta(minutes=31))  # fmt: skip
    planned = flush.plan(group, rules, NOW, UTC)
    assert isinstance(planned, flush.Plan)
    assert planned.action == "escalate"
    assert planned.escalated_from == "Harim Center"
    assert planned.leader_ids == ["idleb-lead-1", "idleb-lead-2"]
    r1 = report("r1", killed=2)
    told = dict(summary_of(r1).state)
    read = reads(group, devices=[], last=LastUpdate(1, told_at, told))
    decision = flush.decide(planned, read, summary_of(r1, previous=told), rules=rules, now=NOW,
                            tz=UTC, channel="fcm", channels=())  # fmt: skip
    assert isinstance(decision, flush.Send)
    assert decision.escalate is True
    assert decision.kind == "escalated"
    assert [i.leader_id for i in decision.outbox] == ["idleb-lead-1", "idleb-lead-2"]


def test_a_group_another_flusher_moved_on_is_lost(rules: RuleSet) -> None:
    group = harim()
    planned = flush.plan(group, rules, NOW, UTC)
    assert isinstance(planned, flush.Plan)
    assert flush.lost(planned, reads(group)) is None
    assert flush.lost(planned, None) == flush.Lost("another flusher got there first")
    assert flush.lost(planned, reads(harim(seq=1))) == flush.Lost("another flusher got there first")


def test_a_browser_gets_web_push_and_a_minimal_route_tells_it_to_leave_the_text_out(
    rules: RuleSet,
) -> None:
    group = harim()
    browser = DeviceRow(8, "harim-lead-1", "https://push.example/x", "web", "en", NOW, NOW)
    read = reads(group, devices=[PHONE, browser])
    decision = decide(rules, group, read, summary_of(report("r1")), channels=("webpush",))
    assert isinstance(decision, flush.Send)
    assert [(i.device_id, i.channel) for i in decision.outbox] == [(7, "fcm"), (8, "webpush")]
    assert "minimal" not in decision.outbox[1].data
    # Without a Web Push channel the browser's push goes the phones' way (kept as it was).
    without = decide(rules, group, read, summary_of(report("r1")))
    assert isinstance(without, flush.Send)
    assert [i.channel for i in without.outbox] == ["fcm", "fcm"]
