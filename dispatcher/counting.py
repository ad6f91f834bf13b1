"""Counting: an incident's figures from its live reports, as the teams keep them. Pure.

Sources have a trust tier, set by operators in `rules/sources.yaml`: `own` (the
organisation's own teams), `trusted` (observatories it works with), `other` (everyone else,
and any source the file does not name). A report's tier is decided when it is accepted and
stored with it.

Per field, the figure in force comes from the highest tier whose live reports give the
field; lower tiers only widen the range shown beside it ("killed: 6 (others: up to 9)").
Within that tier each field has a policy (`POLICIES`):

- `largest` (killed, injured, rescued): per site the largest figure any report gives, summed
  over the sites a report names (`site`, one building of a strike). A report of 0 does not
  give the field (a witness who did not count is not a count of none).
- `latest` (trapped, a present state): per site the latest report (by `occurred_at`, then
  by when it was received), summed over the sites; a 0 from one of our own teams is an
  answer ("all are out"), from anyone else it is a field left out (observers seldom say).

A report that names no site speaks for the whole incident: the tier's figure is the larger
of its site-less figure and the sum of its named sites, so a total is never added to the
counts of the buildings it covers.

Kinds that observers confuse (`FAMILIES`) are one family for merging; an incident's kind is
that of the highest tier's latest report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from dispatcher.model import Casualties, Report

TIERS: tuple[str, ...] = ("own", "trusted", "other")  # highest first
DEFAULT_TIER = "other"
RANK: Mapping[str, int] = {tier: n for n, tier in enumerate(TIERS)}
_LOWEST = len(TIERS) - 1

COUNT_FIELDS = ("killed", "injured", "trapped", "rescued")

# Kinds one strike is often reported as: one family for the merge rule. Every other kind
# is a family of its own.
FAMILIES: tuple[tuple[str, ...], ...] = (("airstrike", "missile", "barrel_bomb"),)
_FAMILY: dict[str, str] = {kind: members[0] for members in FAMILIES for kind in members}
_MEMBERS: dict[str, tuple[str, ...]] = {members[0]: members for members in FAMILIES}


def family(kind: str) -> str:
    """The family a kind merges in (named after its first member)."""
    return _FAMILY.get(kind, kind)


def family_kinds(kind: str) -> tuple[str, ...]:
    """Every kind in the family of `kind`."""
    return _MEMBERS.get(family(kind), (kind,))


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    pick: Literal["largest", "latest"]  # per site, among the highest tier's reports
    # The tiers whose report of 0 gives the field. A wire report that leaves a count out
    # sends 0, so elsewhere a 0 is not an answer.
    zero_from: frozenset[str] = frozenset()

    def gives(self, value: int, tier: str) -> bool:
        """Whether a report of `value` from `tier` gives the field."""
        return value > 0 or tier in self.zero_from


POLICIES: Mapping[str, FieldPolicy] = {
    "killed": FieldPolicy("largest"),
    "injured": FieldPolicy("largest"),
    # A present state: our team's "0 trapped" ends the count of 4 it gave an hour ago.
    "trapped": FieldPolicy("latest", frozenset({"own"})),
    "rescued": FieldPolicy("largest"),
}


class FieldCount(NamedTuple):
    """One field of an incident: the figure in force, the tier and sources that set it
    (None and () when no live report gives the field), and the lowest and highest figure
    any live report that gives it states."""

    value: int = 0
    tier: str | None = None
    sources: tuple[str, ...] = ()
    low: int = 0
    high: int = 0


@dataclass(frozen=True, slots=True)
class IncidentCount:
    casualties: Casualties
    confirmed: bool
    live_reports: int
    kind: str = ""
    fields: tuple[FieldCount, ...] = ()  # per COUNT_FIELDS; () when built without detail

    @property
    def highs(self) -> Casualties:
        """Per field, the highest figure in force or reported by anyone."""
        if not self.fields or self.live_reports == 1:
            return self.casualties  # one report: what it gives is its highest
        return Casualties(*(max(f.value, f.high) for f in self.fields))

    def as_list(self) -> list[int]:
        """What an update records per incident: the four figures, confirmed, then the four
        highest figures reported (updates written before 0016 hold only the first five)."""
        return [*self.casualties, int(self.confirmed), *self.highs]


def changed(before: Sequence[int], now: Sequence[int]) -> bool:
    """Whether an incident's recorded state differs in what an update shows: a figure, or
    (when both record them) the highest figure others report."""
    if list(before[:4]) != list(now[:4]):
        return True
    return len(before) >= 9 and len(now) >= 9 and list(before[5:9]) != list(now[5:9])


_NEVER = datetime.min.replace(tzinfo=UTC)


def _order(r: Report, n: int) -> tuple[datetime, datetime, int]:
    return (r.occurred_at, r.received_at or _NEVER, n)


def count_field(name: str, reports: Sequence[Report], policy: FieldPolicy) -> FieldCount:
    """One field of an incident from its live reports (given in the order received)."""
    index = COUNT_FIELDS.index(name)
    gives = policy.gives
    given = [(n, r) for n, r in enumerate(reports) if gives(r.casualties[index], r.tier)]
    if not given:
        return FieldCount()
    values = [r.casualties[index] for _, r in given]
    top = min(RANK.get(r.tier, _LOWEST) for _, r in given)
    chosen: dict[str | None, tuple[int, Report]] = {}
    for n, r in given:
        if RANK.get(r.tier, _LOWEST) != top:
            continue
        held = chosen.get(r.site)
        if held is None:
            chosen[r.site] = (n, r)
        elif policy.pick == "largest":
            if r.casualties[index] > held[1].casualties[index]:
                chosen[r.site] = (n, r)
        elif _order(r, n) > _order(held[1], held[0]):
            chosen[r.site] = (n, r)
    named = [r for site, (_, r) in chosen.items() if site is not None]
    whole = chosen.get(None)
    named_sum = sum(r.casualties[index] for r in named)
    if whole is not None and (not named or whole[1].casualties[index] > named_sum):
        value, setters = whole[1].casualties[index], [whole[1]]
    else:
        value, setters = named_sum, named
    return FieldCount(
        value,
        TIERS[top],
        tuple(sorted({r.source for r in setters})),
        min(values),
        max(values),
    )


def incident_kind(reports: Sequence[Report]) -> str:
    """The kind of the highest tier's latest live report."""
    best: tuple[int, tuple[datetime, datetime, int]] | None = None
    kind = ""
    for n, r in enumerate(reports):
        key = (-RANK.get(r.tier, _LOWEST), _order(r, n))
        if best is None or key > best:
            best, kind = key, r.kind
    return kind


def count(live: Iterable[Report], policies: Mapping[str, FieldPolicy] = POLICIES) -> IncidentCount:
    """Merge the live reports of one incident (in the order received), field by field."""
    reports = list(live)
    if not reports:
        return IncidentCount(Casualties(), False, 0, "", (FieldCount(),) * len(COUNT_FIELDS))
    if len(reports) == 1:
        return single(reports[0])
    fields = tuple(count_field(name, reports, policies[name]) for name in COUNT_FIELDS)
    return IncidentCount(
        Casualties(*(f.value for f in fields)),
        confirmed=any(r.status == "confirmed" for r in reports),
        live_reports=len(reports),
        kind=incident_kind(reports),
        fields=fields,
    )


_NOT_GIVEN = FieldCount()


def single(r: Report) -> IncidentCount:
    """The count of an incident of one live report (most of them: a surge's tallies count
    every report, so written out field by field, twice as fast as a loop over them)."""
    tier, src = r.tier, (r.source,)
    c = r.casualties
    killed, injured, trapped, rescued = c
    zero = _ZERO_GIVES.get(tier) or _zero_gives(tier)
    fields = (
        FieldCount(killed, tier, src, killed, killed) if killed > 0 or zero[0] else _NOT_GIVEN,
        FieldCount(injured, tier, src, injured, injured) if injured > 0 or zero[1] else _NOT_GIVEN,
        FieldCount(trapped, tier, src, trapped, trapped) if trapped > 0 or zero[2] else _NOT_GIVEN,
        FieldCount(rescued, tier, src, rescued, rescued) if rescued > 0 or zero[3] else _NOT_GIVEN,
    )
    return IncidentCount(c, r.status == "confirmed", 1, r.kind, fields)


def _zero_gives(tier: str) -> tuple[bool, ...]:
    """Per field, whether a report of 0 from `tier` gives it."""
    return tuple(POLICIES[name].gives(0, tier) for name in COUNT_FIELDS)


_ZERO_GIVES = {tier: _zero_gives(tier) for tier in TIERS}
