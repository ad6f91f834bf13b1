"""Who may acknowledge an alert group: a domain rule, apart from the handler that asks.

A group's acknowledgement comes from a leader of its receiver (a team, or one leader); once
the group has escalated, a leader of the team it escalated to may answer for it too. Pure:
the rules and the group's receiver in, leader ids out.
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
