"""Domain decisions the web handlers ask for: who may acknowledge a group, whose groups a
leader sees, whether a report reaches a team (the desk's team filter), and which token a
phone's registration retires."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.acks import acknowledgers, receivers_for
from dispatcher.devices import Registration, registration
from dispatcher.model import Casualties, Report
from dispatcher.rules.load import RuleSet, load_rules
from dispatcher.targets import reaches_team

RULES = Path(__file__).parents[1] / "testdata" / "rules-e2e"
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(RULES)


@pytest.mark.parametrize(
    ("receiver", "escalated", "allowed"),
    [
        ("harim-center", False, {"harim-lead-1"}),
        # Escalated to Idleb Center: its leaders may answer for Harim's group.
        ("harim-center", True, {"harim-lead-1", "idleb-lead-1", "idleb-lead-2"}),
        ("idleb-center", False, {"idleb-lead-1", "idleb-lead-2"}),
        ("idleb-center", True, {"idleb-lead-1", "idleb-lead-2"}),  # it escalates to nobody
        ("idleb-lead-2", False, {"idleb-lead-2"}),  # a route to one leader
        ("gone-team", False, set()),  # a receiver no longer in the rules
    ],
)
def test_who_may_acknowledge_a_group(
    rules: RuleSet, receiver: str, escalated: bool, allowed: set[str]
) -> None:
    assert acknowledgers(rules, receiver, escalated=escalated) == allowed


def test_a_leader_sees_their_team_themselves_and_teams_escalating_to_theirs(
    rules: RuleSet,
) -> None:
    assert receivers_for(rules, "idleb-lead-1") == (["idleb-center", "idleb-lead-1"],
                                                    ["harim-center"])  # fmt: skip
    assert receivers_for(rules, "harim-lead-1") == (["harim-center", "harim-lead-1"], [])
    # Every group a leader sees once escalated, they may acknowledge.
    for team in receivers_for(rules, "idleb-lead-1")[1]:
        assert "idleb-lead-1" in acknowledgers(rules, team, escalated=True)


@pytest.mark.parametrize(
    ("region", "killed", "team", "reached"),
    [
        ("SY0703", 2, "harim-center", True),  # Harim's own route
        ("SY0703", 2, "idleb-center", True),  # and Idleb's, which holds Harim
        ("SY07", 2, "harim-center", False),  # Idleb outside Harim: not Harim's
        ("SY07", 2, "idleb-center", True),
        ("SY07", 12, "idleb-center", True),  # also through its leader's mass-casualty route
        ("SY0703", 2, "no-such-team", False),
    ],
)
def test_whether_a_report_reaches_a_team(
    rules: RuleSet, region: str, killed: int, team: str, reached: bool
) -> None:
    report = Report("obs", "r1", "airstrike", T0, region, Casualties(killed=killed))
    assert reaches_team(rules, report, team) is reached


def test_a_route_to_a_leader_reaches_the_leader_s_team(tmp_path: Path) -> None:
    # The mass-casualty route (to one leader, idleb-lead-2) made the last a report reaches.
    shutil.copytree(RULES, tmp_path, dirs_exist_ok=True)
    routes = tmp_path / "routes.yaml"
    text = routes.read_text()
    routes.write_text(text.replace("continue: true", "continue: false", 1))
    rules = load_rules(tmp_path)
    report = Report("obs", "r1", "airstrike", T0, "SY0703", Casualties(killed=12))
    assert [r.receiver for r in rules.routes_for(report)] == ["idleb-lead-2"]
    assert reaches_team(rules, report, "idleb-center")
    assert not reaches_team(rules, report, "harim-center")


@pytest.mark.parametrize(
    ("token", "replaces", "retire"),
    [
        ("new-token", None, None),
        ("new-token", "old-token", "old-token"),
        ("same-token", "same-token", None),  # registered again: nothing to sign out
    ],
)
def test_a_registration_retires_the_token_it_replaces(
    token: str, replaces: str | None, retire: str | None
) -> None:
    assert registration(token, replaces) == Registration(token, retire)
