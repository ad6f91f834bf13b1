"""Surges, the pure parts: the decision as a table, what counts, where, the texts, the tree."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.group import GroupTally
from dispatcher.model import Casualties, Point, Report
from dispatcher.notify.render import PDF, RLE
from dispatcher.notify.render_surge import render_surge
from dispatcher.rules.explain import explain, explain_text, show
from dispatcher.rules.load import RuleSet, load_rules
from dispatcher.rules.surge_replay import SurgeAlert, replay
from dispatcher.surge import SurgeDecision, SurgeRule, SurgeState, after, decide, places

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
S, M = timedelta(seconds=1), timedelta(minutes=1)
RULE = SurgeRule(at_least=8, within=30 * M)
EVERY = 10 * M  # the route's group_interval


def times(*minutes_ago: float) -> list[datetime]:
    """Incidents that occurred this many minutes before T0."""
    return [T0 - m * M for m in minutes_ago]


EIGHT = times(29, 25, 20, 15, 10, 5, 2, 1)  # oldest leaves the window at T0 + 1m
OPEN = SurgeState(open_since=T0 - 5 * M, told=8, last_push_at=T0 - 5 * M)

CASES = [
    # (why, incidents, state, decision)
    ("seven in the window: below the threshold; look again when the window empties",
     times(29, 25, 20, 15, 10, 5, 1), SurgeState(), SurgeDecision(None, 7, T0 + 29 * M)),
    ("the eighth: the surge opens; look again when the oldest leaves the window",
     EIGHT, SurgeState(), SurgeDecision("open", 8, T0 + M)),
    ("an incident exactly 30m old no longer counts",
     times(30, 25, 20, 15, 10, 5, 2, 1), SurgeState(), SurgeDecision(None, 7, T0 + 29 * M)),
    ("nothing in the window and no surge open: the group closes, silently",
     times(31, 45), SurgeState(), SurgeDecision("close", 0, None)),
    ("open, and the count is what was told: nothing",
     EIGHT, OPEN, SurgeDecision(None, 8, T0 + M)),
    ("open, one more, 5m after the last push: wait for group_interval",
     [*EIGHT, T0], OPEN, SurgeDecision(None, 9, T0 + M)),
    ("open, one more, 10m after the last push: repeat",
     [*EIGHT, T0], SurgeState(T0 - 10 * M, 8, T0 - 10 * M), SurgeDecision("repeat", 9, T0 + M)),
    ("open, below the threshold: subsides at once (never held back); closes when empty",
     times(25, 20, 15, 10, 5, 2, 1), OPEN, SurgeDecision("subside", 7, T0 + 29 * M)),
    ("open, nothing left: subsides, and the group closes next",
     [], OPEN, SurgeDecision("subside", 0, T0)),
    ("risen again 2m after it subsided: held until group_interval, no flapping",
     EIGHT, SurgeState(None, 7, T0 - 2 * M), SurgeDecision(None, 8, T0 + M)),
    ("risen again 10m after it subsided: a new surge opens",
     EIGHT, SurgeState(None, 7, T0 - 10 * M), SurgeDecision("open", 8, T0 + M)),
]  # fmt: skip


@pytest.mark.parametrize(("why", "occurred", "state", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(
    why: str, occurred: list[datetime], state: SurgeState, expected: SurgeDecision
) -> None:
    assert decide(RULE, occurred, state, T0, EVERY) == expected, why


def test_a_surge_held_by_group_interval_wakes_at_the_sooner_of_its_two_times() -> None:
    # Told 8, now 9, last push 5m ago: a repeat is allowed at T0 + 5m; the oldest leaves at
    # T0 + 30s, and then the count is 8 again, as told.
    occurred = [T0 - (30 * M - 30 * S), *EIGHT[1:], T0]
    got = decide(RULE, occurred, OPEN, T0, EVERY)
    assert got == SurgeDecision(None, 9, T0 + 30 * S)
    late = decide(RULE, occurred[1:], OPEN, T0, EVERY)
    assert late == SurgeDecision(None, 8, T0 + 5 * M), "the count told: nothing to repeat"


def test_the_state_after_each_push() -> None:
    opened = after(SurgeDecision("open", 8, None), SurgeState(), T0)
    assert opened == SurgeState(T0, 8, T0)
    repeated = after(SurgeDecision("repeat", 9, None), opened, T0 + EVERY)
    assert repeated == SurgeState(T0, 9, T0 + EVERY)
    subsided = after(SurgeDecision("subside", 3, None), repeated, T0 + 40 * M)
    assert subsided == SurgeState(None, 3, T0 + 40 * M)
    assert after(SurgeDecision(None, 3, None), subsided, T0 + 50 * M) == subsided


def test_a_whole_surge_by_its_decisions() -> None:
    """Eight strikes in 14 minutes, two more, then quiet: open, one repeat, subsided, closed."""
    incidents = [T0 + 2 * n * M for n in range(8)]  # 08:00 ... 08:14
    state, now, said = SurgeState(), T0, []
    arrivals = [*incidents, T0 + 15 * M, T0 + 16 * M]
    pending = sorted(arrivals)
    seen: list[datetime] = []
    wakeup: datetime | None = None
    for _ in range(50):
        candidates = [t for t in (pending[0] if pending else None, wakeup) if t is not None]
        if not candidates:
            break
        now = min(candidates)
        while pending and pending[0] <= now:
            seen.append(pending.pop(0))
        d = decide(RULE, seen, state, now, EVERY)
        if d.action is not None:
            said.append((d.action, d.count, now))
        state, wakeup = after(d, state, now), d.wakeup
    assert said == [
        ("open", 8, T0 + 14 * M),
        ("repeat", 10, T0 + 24 * M),  # 9 at 08:15, 10 at 08:16: told once, a group_interval on
        ("subside", 7, T0 + 34 * M),  # 08:00, 08:02 and 08:04 left the window at 08:30-08:34
        ("close", 0, T0 + 46 * M),
    ]


def test_places_one_level_below_the_group_s_region_most_first() -> None:
    paths = {
        "SY0703": ("SY", "SY07", "SY0703"),
        "SY0702": ("SY", "SY07", "SY0702"),
        "SY07": ("SY", "SY07"),
        "SY0204": ("SY", "SY02", "SY0204"),
    }
    regions = ["SY0702", "SY0703", "SY0703", "SY07", "SY0703", "SY0702", "SY0204"]
    assert places(regions, paths.__getitem__, "SY07") == [
        ("SY0703", 3), ("SY0702", 2), ("SY0204", 1), ("SY07", 1),
    ]  # fmt: skip
    assert places(regions, paths.__getitem__, "SY") == [("SY07", 6), ("SY02", 1)]
    assert places(["SY0703"], paths.__getitem__, None) == [("SY0703", 1)]


def test_live_incidents_count_two_observers_once_and_leave_retractions_out() -> None:
    def rep(source: str, rid: str, incident: str, minute: int, **kw: object) -> Report:
        return Report(source, rid, "airstrike", T0 + minute * M, "SY0703",
                      Casualties(killed=1), incident=incident, **kw)  # type: ignore[arg-type]  # fmt: skip

    tally = GroupTally()
    tally.add([
        (1, rep("observatory", "a", "inc-1", 0)),
        (2, rep("civil-defence", "b", "inc-1", 1)),  # the same strike, seen by another
        (3, rep("observatory", "c", "inc-2", 2)),
        (4, rep("observatory", "c", "inc-2", 2, status="retracted", revision=2)),
        (5, rep("observatory", "d", "inc-3", 3, location=Point(36.1, 36.5))),
    ])  # fmt: skip
    assert tally.live_incidents() == [
        ("inc-1", (T0).timestamp(), "SY0703", "airstrike"),
        ("inc-3", (T0 + 3 * M).timestamp(), "SY0703", "airstrike"),
    ]


def test_texts_in_english_and_arabic() -> None:
    where = [("Harim", 4), ("Ariha", 3), ("Idleb", 2)]
    opened = render_surge("open", count=9, was=None, rule=RULE, place="Idleb", places=where,
                          locale="en")  # fmt: skip
    assert opened.title == "Idleb · surge: 9 incidents in 30m"
    assert opened.body == "Surge: 9 incidents in Idleb in the last 30m — Harim 4, Ariha 3, Idleb 2"
    again = render_surge("repeat", count=12, was=9, rule=RULE, place="Idleb", places=where,
                         locale="en")  # fmt: skip
    assert again.title == "Idleb · surge continues: 12 incidents in 30m"
    assert again.body.startswith("Surge continues: 12 incidents in Idleb in the last 30m (was 9)")
    over = render_surge("subside", count=3, was=12, rule=RULE, place="Idleb", places=where,
                        locale="en")  # fmt: skip
    assert (over.title, over.body) == (
        "Idleb · surge subsided",
        "Subsided: 3 incidents in Idleb in the last 30m (a surge is 8 or more)",
    )
    ar = render_surge("open", count=9, was=None, rule=RULE, place="إدلب",
                      places=[("حارم", 4), ("أريحا", 3), ("إدلب", 2)], locale="ar")  # fmt: skip
    assert ar.title == f"{RLE}إدلب · تصاعد الحوادث: 9 خلال 30m{PDF}"
    assert ar.body == f"{RLE}تصاعد الحوادث في إدلب خلال آخر 30m: 9 — حارم 4، أريحا 3، إدلب 2{PDF}"
    many = [(f"Place {n}", 1) for n in range(9)]
    crowded = render_surge("open", count=9, was=None, rule=RULE, place="Idleb", places=many,
                           locale="en")  # fmt: skip
    assert crowded.body.endswith("Place 4 1, Place 5 1, +3")


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(ROOT / "rules")


def report(region: str, killed: int = 0) -> Report:
    return Report("s", "1", "airstrike", T0, region, Casualties(killed=killed))


def test_a_surge_route_takes_no_report_from_the_routes_after_it(shipped: RuleSet) -> None:
    assert [r.id for r in shipped.routes_for(report("SY0703"))] == ["harim", "idleb"]
    (surge,) = shipped.surges_for(report("SY0703"))
    assert surge.id == "governorate-surge"
    assert surge.surge == SurgeRule(8, 30 * M)
    assert (surge.receiver, surge.group_wait, surge.group_interval) == (
        "central-desk", timedelta(0), 10 * M,
    )  # fmt: skip
    assert shipped.group_labels(surge, report("SY0703")) == (("region", "SY07"),)
    assert shipped.surges_for(report("SY", killed=12)) == [], "outside its regions"


def test_a_node_whose_only_match_is_a_surge_route_still_takes_the_report(
    tmp_path: Path,
) -> None:
    tmp_path = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", tmp_path)
    (tmp_path / "routes.yaml").write_text(
        "route:\n"
        "  receiver: central-desk\n"
        "  routes:\n"
        "    - name: idleb\n"
        "      match: {regions: [SY07]}\n"
        "      receiver: idleb-center\n"
        "      routes:\n"
        "        - name: harim-surge   # deep in the tree, per district\n"
        "          match: {regions: [SY0703]}\n"
        "          surge: {incidents: 3, within: 10m}\n"
        "          group_by: [region]\n"
        "        - name: maarat\n"
        "          match: {regions: [SY0702]}\n"
        "          receiver: central-duty-officer\n"
    )
    rules = load_rules(tmp_path)
    assert [r.id for r in rules.routes_for(report("SY0703"))] == ["idleb"]
    (surge,) = rules.surges_for(report("SY0703"))
    assert surge.id == "harim-surge"
    assert surge.receiver == "idleb-center", "inherited"
    assert surge.surge == SurgeRule(3, 10 * M), "a bare count is at least that many"
    assert [r.id for r in rules.routes_for(report("SY0702"))] == ["maarat"]
    assert rules.surges_for(report("SY0702")) == []


def test_rules_test_says_a_report_counts_toward_a_surge(shipped: RuleSet) -> None:
    result = explain(shipped, report("SY0703"))
    surge = result["routes"][0]
    assert (surge["route"], surge["group"]) == ("governorate-surge", {"region": "SY07"})
    assert surge["surge"] == {
        "incidents_at_least": 8, "within": "30m", "repeat_at_most_every": "10m",
    }  # fmt: skip
    assert [r["surge"] for r in result["routes"][1:]] == [None, None]
    assert explain_text(result)[1] == (
        "route root > governorate-surge: Central Desk (central-desk) [counts toward a surge of "
        ">= 8 incidents within 30m, per region=SY07; told again at most every 10m]"
    )
    assert show(shipped)[2] == (
        "  governorate-surge: surge of incidents >= 8 within 30m, regions in ['SY02', 'SY07'] "
        "-> central-desk [group by region:1; wait 0s, repeat at most every 10m, ttl 1h]"
    )


def test_a_replay_opens_repeats_and_subsides_as_the_service_would(shipped: RuleSet) -> None:
    """Ten strikes in Idleb a minute apart, the last retracted: 9 count."""
    reports = [
        Report("obs", f"r{n}", "airstrike", T0 + n * M, "SY0703", Casualties(killed=1),
               location=Point(36.12 + 0.01 * n, 36.52))
        for n in range(10)
    ]  # fmt: skip
    reports.append(reports[-1]._replace(status="retracted", revision=2))
    (alert,) = replay(shipped, reversed(reports))
    assert alert == SurgeAlert(
        route="governorate-surge", receiver="central-desk", group=(("region", "SY07"),),
        opened_at=T0 + 7 * M, subsided_at=T0 + 31 * M, peak=9, repeats=2,
    )  # fmt: skip
    # 08:17 (9, a group_interval after 08:07), 08:30 (8: 08:00 left the window), then 7.
    assert replay(shipped, reports[:7]) == [], "seven: below the threshold"
