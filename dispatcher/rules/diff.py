"""What a rules change would do: replay reports through two rule sets and compare who hears.

Pure: used by `dispatcher rules diff OLD NEW --reports FILE.ndjson`. For each report, each
rule set places it, routes it, and names the leaders its routes reach; the difference is
told per leader (gains and losses) and per report (a new region, a route turned immediate).
Surge routes are replayed too (dispatcher.rules.surge_replay): the surge alerts each rule
set would open, and which leaders would gain or lose one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dispatcher.intake import ReportIn, parse_report, to_report
from dispatcher.model import Report
from dispatcher.rules.load import RuleSet
from dispatcher.rules.surge_replay import SurgeAlert, replay


@dataclass(frozen=True, slots=True)
class Reach:
    """Where one rule set sends one report."""

    region: str
    leaders: dict[str, tuple[str, bool]]  # leader id -> (route id, immediate)


@dataclass(frozen=True, slots=True)
class ReportChange:
    report: str  # source/id
    summary: str  # kind, region, counts: enough to recognise it
    old: Reach | None  # None: this rule set refuses the report
    new: Reach | None


@dataclass
class Diff:
    old_version: str
    new_version: str
    replayed: int = 0
    invalid: list[str] = field(default_factory=list)  # "line N: why"
    changes: list[ReportChange] = field(default_factory=list)
    old_surges: list[SurgeAlert] = field(default_factory=list)
    new_surges: list[SurgeAlert] = field(default_factory=list)
    # leader id per receiver, for each rule set (filled by `diff`)
    old_leaders: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    new_leaders: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    def surges_per_leader(self) -> dict[str, dict[str, list[SurgeAlert]]]:
        """leader id -> {"gained": [...], "lost": [...]}: surge alerts one rule set would
        send the leader and the other would not (the same group, opened at the same time)."""

        def reached(
            alerts: list[SurgeAlert], leaders: dict[str, tuple[str, ...]]
        ) -> dict[tuple[str, tuple[tuple[str, str], ...], datetime], SurgeAlert]:
            return {
                (leader, a.group, a.opened_at): a
                for a in alerts
                for leader in leaders.get(a.receiver, ())
            }

        old = reached(self.old_surges, self.old_leaders)
        new = reached(self.new_surges, self.new_leaders)
        out: dict[str, dict[str, list[SurgeAlert]]] = {}
        for key in sorted(old.keys() | new.keys()):
            if key in old and key in new:
                continue
            what = "gained" if key in new else "lost"
            out.setdefault(key[0], {}).setdefault(what, []).append((new | old)[key])
        return out

    def per_leader(self) -> dict[str, dict[str, list[str]]]:
        """leader id -> {"gained": [...], "lost": [...], "now immediate": [...],
        "no longer immediate": [...]}, each a list of report keys."""
        out: dict[str, dict[str, list[str]]] = {}
        for change in self.changes:
            old = change.old.leaders if change.old else {}
            new = change.new.leaders if change.new else {}
            for leader in sorted(old.keys() | new.keys()):
                if leader not in old:
                    what = "gained"
                elif leader not in new:
                    what = "lost"
                elif old[leader][1] != new[leader][1]:
                    what = "now immediate" if new[leader][1] else "no longer immediate"
                else:
                    continue
                out.setdefault(leader, {}).setdefault(what, []).append(change.report)
        return out


def reach(rules: RuleSet, report: Report) -> Reach:
    leaders: dict[str, tuple[str, bool]] = {}
    for route in rules.routes_for(report):
        for leader in rules.leaders_of(route.receiver):
            previous = leaders.get(leader.id)
            # A leader reached by several routes hears at once if any of them is immediate.
            if previous is None or (route.immediate and not previous[1]):
                leaders[leader.id] = (route.id, route.immediate)
    return Reach(report.region, leaders)


def _place(rules: RuleSet, data: Any, now: datetime) -> tuple[Report | None, str]:
    parsed = parse_report(data, now=now, resolve_region=rules.resolve_region)
    if not isinstance(parsed, ReportIn):
        return None, "; ".join(f"{e.field}: {e.message}" for e in parsed)
    lat = parsed.location.lat if parsed.location else None
    lon = parsed.location.lon if parsed.location else None
    return to_report(parsed, region=rules.locate(parsed.region, lat, lon)), ""


def diff(old: RuleSet, new: RuleSet, reports: Iterable[tuple[int, Any]], now: datetime) -> Diff:
    """Replay (line number, decoded report) pairs through both rule sets."""
    result = Diff(old.version, new.version)
    placed_old: list[Report] = []
    placed_new: list[Report] = []
    for line, data in reports:
        before, why_old = _place(old, data, now)
        after, why_new = _place(new, data, now)
        placed_old.extend([before] if before else [])
        placed_new.extend([after] if after else [])
        if before is None and after is None:
            result.invalid.append(f"line {line}: {why_new}")
            continue
        result.replayed += 1
        old_reach = reach(old, before) if before else None
        new_reach = reach(new, after) if after else None
        if old_reach == new_reach:
            continue
        some = after or before
        assert some is not None
        c = some.casualties
        summary = (
            f"{some.kind} in {some.region}, killed {c.killed}, injured {c.injured}, "
            f"trapped {c.trapped}"
        )
        if before is None:
            summary += f"; refused by the old rules ({why_old})"
        if after is None:
            summary += f"; refused by the new rules ({why_new})"
        result.changes.append(
            ReportChange(f"{some.source}/{some.id}", summary, old_reach, new_reach)
        )
    result.old_surges = replay(old, placed_old)
    result.new_surges = replay(new, placed_new)
    for rules, alerts, leaders in ((old, result.old_surges, result.old_leaders),
                                   (new, result.new_surges, result.new_leaders)):  # fmt: skip
        for alert in alerts:
            leaders[alert.receiver] = tuple(x.id for x in rules.leaders_of(alert.receiver))
    return result


def diff_text(d: Diff, old: RuleSet, new: RuleSet) -> list[str]:
    lines = [
        f"rules {d.old_version} -> {d.new_version}: {d.replayed} reports replayed, "
        f"{len(d.changes)} reach different leaders"
    ]
    lines.extend(f"skipped {why}" for why in d.invalid)
    by_key = {c.report: c for c in d.changes}
    says = {
        "gained": "+ {who} would gain {n}",
        "lost": "- {who} would lose {n}",
        "now immediate": "! {who} would hear at once of {n}",
        "no longer immediate": "~ {who} would no longer hear at once of {n}",
    }
    for leader_id, kinds in sorted(d.per_leader().items()):
        leader = new.leaders.get(leader_id) or old.leaders.get(leader_id)
        who = f"{leader.name} ({leader_id})" if leader else leader_id
        for what, keys in kinds.items():
            n = f"{len(keys)} report{'s' if len(keys) != 1 else ''}:"
            lines.append(says[what].format(who=who, n=n))
            lines.extend(f"    {k}: {by_key[k].summary}" for k in keys)
    if d.old_surges or d.new_surges:
        lines.append(
            f"surge alerts: {len(d.old_surges)} with the old rules, {len(d.new_surges)} with "
            "the new"
        )
    for leader_id, surges in sorted(d.surges_per_leader().items()):
        leader = new.leaders.get(leader_id) or old.leaders.get(leader_id)
        who = f"{leader.name} ({leader_id})" if leader else leader_id
        for what, alerts in surges.items():
            n = f"{len(alerts)} surge alert{'s' if len(alerts) != 1 else ''}:"
            lines.append(("+ {who} would gain {n}" if what == "gained" else
                          "- {who} would lose {n}").format(who=who, n=n))  # fmt: skip
            lines.extend(f"    {a.describe()}" for a in alerts)
    for change in d.changes:
        if change.old and change.new and change.old.region != change.new.region:
            lines.append(
                f"  {change.report} is placed in {change.new.region}, was {change.old.region}"
            )
    return lines


def diff_json(d: Diff) -> dict[str, Any]:
    def reach_json(r: Reach | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {
            "region": r.region,
            "leaders": {
                leader: {"route": route, "immediate": immediate}
                for leader, (route, immediate) in sorted(r.leaders.items())
            },
        }

    return {
        "old_version": d.old_version,
        "new_version": d.new_version,
        "replayed": d.replayed,
        "invalid": d.invalid,
        "leaders": d.per_leader(),
        "surges": {
            "old": [_surge_json(a) for a in d.old_surges],
            "new": [_surge_json(a) for a in d.new_surges],
            "leaders": {
                leader: {what: [_surge_json(a) for a in alerts] for what, alerts in kinds.items()}
                for leader, kinds in d.surges_per_leader().items()
            },
        },
        "reports": [
            {
                "report": c.report,
                "summary": c.summary,
                "old": reach_json(c.old),
                "new": reach_json(c.new),
            }
            for c in d.changes
        ],
    }


def _surge_json(a: SurgeAlert) -> dict[str, Any]:
    return {
        "route": a.route,
        "receiver": a.receiver,
        "group": dict(a.group),
        "opened_at": a.opened_at.isoformat(),
        "subsided_at": a.subsided_at.isoformat() if a.subsided_at else None,
        "peak": a.peak,
        "repeats": a.repeats,
    }
