"""What the desk shows, built from rules and store rows (pure: plain values and `now` in).

The map's compact incident rows and its region outlines, an incident's panel, the rule
tester's answer (the same as `dispatcher rules test`), an open group's state with why it
is quiet, and which open groups a silence would hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import shapely
from shapely.geometry import mapping

from dispatcher.counting import COUNT_FIELDS
from dispatcher.group import count_incident
from dispatcher.intake import ReportIn, parse_report, report_json, to_report
from dispatcher.model import Casualties, Report
from dispatcher.rules.explain import explain
from dispatcher.rules.load import RuleSet
from dispatcher.silence import Silence, first_muting
from dispatcher.store.rows import IncidentRow, OpenGroup

# Outlines drawn on a map a few hundred pixels wide need no survey precision: ~100 m.
SIMPLIFY_DEGREES = 0.001
MAP_CAP = 10_000  # incidents on the map at once; past it the newest are shown, and why


def region_names(rules: RuleSet, region: str) -> dict[str, Any]:
    return {
        "id": region,
        "path": list(rules.region_path(region)),
        "name": rules.region_name(region, "en"),
        "name_ar": rules.region_name(region, "ar"),
    }


def outlines_geojson(rules: RuleSet) -> dict[str, Any]:
    """The rule set's region outlines, simplified, deepest last (drawn on top)."""
    features = []
    outlines = rules.index.outlines()
    for rid in sorted(outlines, key=lambda r: (len(rules.region_path(r)), r)):
        geom = shapely.set_precision(
            outlines[rid].simplify(SIMPLIFY_DEGREES, preserve_topology=True), 1e-4
        )
        region = rules.regions.get(rid)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "id": rid,
                    "name": region.name if region else rid,
                    "name_ar": region.name_ar if region else rid,
                    "depth": len(rules.region_path(rid)),
                    "parent": region.parent if region else None,
                },
                "geometry": mapping(geom),
            }
        )
    return {"type": "FeatureCollection", "version": rules.version, "features": features}


class MapIncident(NamedTuple):
    """An incident as the map draws it: where, what, and its figures in force."""

    id: str
    kind: str
    occurred_at: datetime
    region: str
    lat: float | None
    lon: float | None
    killed: int
    injured: int
    trapped: int
    rescued: int
    confirmed: bool
    live_reports: int


def as_report(row: MapIncident) -> Report:
    """An incident on the map as one report with its figures in force, for asking the
    rules where such a report goes."""
    return Report(
        source="desk",
        id=row.id,
        kind=row.kind,
        occurred_at=row.occurred_at,
        region=row.region,
        casualties=Casualties(row.killed, row.injured, row.trapped, row.rescued),
        status="confirmed" if row.confirmed else "unconfirmed",
    )


def map_incidents(rows: Iterable[IncidentRow]) -> list[MapIncident]:
    """Each incident's figures in force, counted as `GET /v1/incidents` counts them."""
    out = []
    for row in rows:
        _, merged = count_incident(r.report for r in row.reports)
        c = merged.casualties
        out.append(
            MapIncident(
                row.id,
                merged.kind or row.kind,
                row.occurred_at,
                row.region,
                row.location.lat if row.location else None,
                row.location.lon if row.location else None,
                c.killed,
                c.injured,
                c.trapped,
                c.rescued,
                merged.confirmed,
                merged.live_reports,
            )
        )
    return out


def incident_panel(row: IncidentRow, rules: RuleSet) -> dict[str, Any]:
    """An incident with its reports, every revision of each, and which counts are in force
    (the largest figure of each live report's latest revision, and whose it is)."""
    _, merged = count_incident(r.report for r in row.reports)
    # Per field: the figure in force, the tier and sources that set it, and the range any
    # live report gives (docs/counting.md).
    in_force: dict[str, Any] = {
        name: {
            "value": f.value,
            "from": list(f.sources),
            "tier": f.tier,
            "low": f.low,
            "high": f.high,
        }
        for name, f in zip(COUNT_FIELDS, merged.fields, strict=True)
    }
    reports: dict[str, dict[str, Any]] = {}
    for stored in row.reports:
        r = stored.report
        key = f"{r.source}/{r.id}"
        entry = reports.setdefault(key, {"source": r.source, "id": r.id, "revisions": []})
        entry["revisions"].append(
            {
                **report_json(r),
                "received_at": stored.received_at.isoformat(),
                "key": stored.key_name,
                "rules_version": stored.rules_version,
            }
        )
    for entry in reports.values():
        newest = entry["revisions"][-1]
        entry["live"] = newest["status"] != "retracted"
        entry["latest"] = newest["revision"]
    return {
        "id": row.id,
        "kind": merged.kind or row.kind,
        "occurred_at": row.occurred_at.isoformat(),
        "region": region_names(rules, row.region),
        "location": {"lat": row.location.lat, "lon": row.location.lon} if row.location else None,
        "confirmed": merged.confirmed,
        "live_reports": merged.live_reports,
        "in_force": in_force,
        "reports": list(reports.values()),
    }


def rule_test(rules: RuleSet, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Where a report would go, as `dispatcher rules test` says; `errors` when the report
    the operator described is not valid."""
    body = {"id": "desk-test", "source": "desk", "occurred_at": now.isoformat(), **data}
    parsed = parse_report(body, now=now, resolve_region=rules.resolve_region)
    if not isinstance(parsed, ReportIn):
        return {"errors": [e.to_json() for e in parsed]}
    lat = parsed.location.lat if parsed.location else None
    lon = parsed.location.lon if parsed.location else None
    report = to_report(parsed, region=rules.locate(parsed.region, lat, lon))
    result = explain(rules, report)
    result["region"]["name_ar"] = rules.region_name(report.region, "ar")
    return result


def region_paths(rules: RuleSet, og: OpenGroup) -> list[tuple[str, ...]]:
    """The region a group stands for (its label), or else its reports' regions (as the
    pipeline decides silences and inhibitions)."""
    labels = dict(og.group.labels)
    regions = [labels["region"]] if "region" in labels else list(og.regions)
    return [rules.region_path(r) for r in regions]


def held_by_silence(
    rules: RuleSet, og: OpenGroup, silences: Sequence[Silence], now: datetime
) -> Silence | None:
    return first_muting(
        silences,
        now,
        route_id=og.group.route_id,
        receiver=og.group.receiver,
        region_paths=region_paths(rules, og),
        kinds=og.kinds,
    )


def inhibited_by(
    rules: RuleSet,
    og: OpenGroup,
    pushes: dict[str, list[tuple[tuple[tuple[str, str], ...], datetime]]],
    now: datetime,
) -> tuple[str, datetime] | None:
    """(inhibition rule, until) of the longest inhibition over the group, given each source
    route's recent pushes."""
    paths = region_paths(rules, og)
    best: tuple[str, datetime] | None = None
    for rule in rules.inhibitions:
        if og.group.route_id not in rule.target_routes:
            continue
        for route_id in rule.source_routes:
            for labels, pushed_at in pushes.get(route_id, []):
                region = dict(labels).get("region")
                end = pushed_at + rule.for_
                covers = region is not None and paths and all(region in p for p in paths)
                if covers and end > now and (best is None or end > best[1]):
                    best = (rule.name, end)
    return best


def silence_would_hold(
    rules: RuleSet, silence: Silence, groups: Sequence[OpenGroup]
) -> list[OpenGroup]:
    """The open groups a silence covers (whatever its window: the preview before saving)."""
    return [
        og
        for og in groups
        if silence.mutes(
            route_id=og.group.route_id,
            receiver=og.group.receiver,
            region_paths=region_paths(rules, og),
            kinds=og.kinds,
        )
    ]


def group_row(
    rules: RuleSet,
    og: OpenGroup,
    *,
    silence: Silence | None,
    inhibition: tuple[str, datetime] | None,
    now: datetime,
) -> dict[str, Any]:
    g = og.group
    labels = dict(g.labels)
    region = labels.get("region")
    team = rules.teams.get(g.receiver)
    escalate_at = (
        g.created_at + g.escalate_after
        if g.escalate_after is not None and g.created_at is not None and g.acked_at is None
        else None
    )
    quiet: list[dict[str, Any]] = []
    if silence is not None:
        quiet.append(
            {
                "why": "silence",
                "id": silence.id,
                "until": silence.ends_at.isoformat(),
                "author": silence.author,
                "reason": silence.reason,
            }
        )
    if inhibition is not None:
        quiet.append(
            {"why": "inhibition", "rule": inhibition[0], "until": inhibition[1].isoformat()}
        )
    return {
        "id": g.id,
        "route": g.route_id,
        "receiver": g.receiver,
        "receiver_name": rules.receiver_name(g.receiver),
        "labels": labels,
        "region": region_names(rules, region) if region else None,
        "seq": g.seq,
        "reports": og.reports,
        "kinds": list(og.kinds),
        "last_report_at": g.last_report_at.isoformat() if g.last_report_at else None,
        "last_update_at": og.last_update_at.isoformat() if og.last_update_at else None,
        "pending": g.pending,
        "due_at": g.next_flush_at.isoformat() if g.next_flush_at else None,
        "overdue": bool(
            g.pending and g.next_flush_at and g.next_flush_at < now - timedelta(minutes=1)
        ),
        "acks": [
            {
                "leader": a.leader_id,
                "name": rules.leaders[a.leader_id].name if a.leader_id in rules.leaders else None,
                "at": a.at.isoformat(),
                "responding": a.responding,
                "note": a.note,
            }
            for a in og.acks
        ],
        "escalated_at": g.escalated_at.isoformat() if g.escalated_at else None,
        "escalates_at": escalate_at.isoformat() if escalate_at and g.escalated_at is None else None,
        "escalate_to": team.escalate_to if team is not None else None,
        "quiet": quiet,
    }
