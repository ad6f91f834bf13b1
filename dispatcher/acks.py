"""Who may acknowledge an alert group, and whose groups a leader sees: domain rules, apart
from the handlers that ask (`web/groups.py`, `web/leaders.py`).

A group's acknowledgement comes from a leader of its receiver (a team, or one leader); once
the group has escalated, a leader of the team it escalated to may answer for it too. A
leader's app lists the same groups: their team's and their own, and those of teams that
escalate to theirs once escalated. Pure: the rules and ids in, ids out.
"""

from __future__ import annotations

from dispatcher.rules.load import RuleSet


def acknowledgers(rules: RuleSet, receiver: str, *, escalated: bool) -> frozenset[str]:
    """The leaders who may acknowledge a group of `receiver` (escalated or not)."""
    allowed = {leader.id for leader in rules.leaders_of(receiver)}
    team = rules.teams.get(receiver)
    if escalated and team is not None and team.escalate_to:
        allowed |= {leader.id for leader in rules.leaders_of(team.escalate_to)}
    return frozenset(allowed)


def receivers_for(rules: RuleSet, leader_id: str) -> tuple[list[str], list[str]]:
    """(receivers whose groups the leader gets, teams whose groups reach the leader only
    once escalated): their own team and themselves, and the teams that escalate to theirs.
    The same leaders `acknowledgers` admits."""
    leader = rules.leaders[leader_id]
    escalating = sorted(t.id for t in rules.teams.values() if t.escalate_to == leader.team)
    return [leader.team, leader.id], escalating
