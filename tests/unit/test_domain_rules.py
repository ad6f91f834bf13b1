"""Domain decisions the web handlers ask for: who may acknowledge a group, and which token a
phone's registration retires."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.acks import acknowledgers
from dispatcher.devices import Registration, registration
from dispatcher.rules.load import RuleSet, load_rules

RULES = Path(__file__).parents[1] / "testdata" / "rules-e2e"


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
