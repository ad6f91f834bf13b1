"""Who gains and who loses alerts between two applied rule versions: the desk's diff
(`GET /desk/api/rules/diff`, and the page /desk/rules/diff), replaying the last day's
reports through the kept files of both, as `dispatcher rules diff --reports` does.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from dispatcher.intake import FieldError
from dispatcher.model import Report
from dispatcher.rules.diff import diff, diff_json
from dispatcher.rules.load import RuleSet, load_rules
from dispatcher.web.auth import requires
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import CLOCK, REPORTS, RULE_SETS, json_response

DIFF_WINDOW = timedelta(days=1)
DIFF_MAX_REPORTS = 50_000


def _wire(report: Report) -> dict[str, Any]:
    """A stored report as its reporter sent it, for replaying through other rules."""
    c = report.casualties
    out: dict[str, Any] = {
        "id": report.id,
        "source": report.source,
        "kind": report.kind,
        "occurred_at": report.occurred_at.isoformat(),
        "status": report.status,
        "revision": report.revision,
        "casualties": {
            "killed": c.killed, "injured": c.injured, "trapped": c.trapped, "rescued": c.rescued
        },
    }  # fmt: skip
    if report.location is not None:
        out["location"] = {"lat": report.location.lat, "lon": report.location.lon}
    if report.given_region is not None:
        out["region"] = report.given_region
    return out


def _load_snapshot(files: dict[str, str]) -> RuleSet:
    with tempfile.TemporaryDirectory(prefix="dispatcher-rules-") as folder:
        root = Path(folder)
        for name, content in files.items():
            path = (root / name).resolve()
            if not path.is_relative_to(root.resolve()):
                raise ValueError(f"a kept rule file lies outside the folder: {name}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        return load_rules(root)


async def rules_diff(request: web.Request, old: str, new: str) -> dict[str, Any]:
    """Who gains and who loses alerts between two applied versions, replaying the last
    day's reports (as `dispatcher rules diff --reports`); `missing` names a version whose
    files were not kept."""
    report_store, rule_set_store = request.app[REPORTS], request.app[RULE_SETS]
    kept = {v: await rule_set_store.rule_set_files(v) for v in (old, new)}
    missing = [v for v, files in kept.items() if files is None]
    if missing:
        return {"missing": missing}
    rule_sets = {}
    for v, files in kept.items():
        assert files is not None
        rule_sets[v] = await asyncio.to_thread(_load_snapshot, files)
    now = request.app[CLOCK]()
    reports = await report_store.reports_received_since(now - DIFF_WINDOW, DIFF_MAX_REPORTS)
    result = await asyncio.to_thread(
        diff,
        rule_sets[old],
        rule_sets[new],
        ((i + 1, _wire(r)) for i, r in enumerate(reports)),
        now,
    )
    return {**diff_json(result), "window_hours": int(DIFF_WINDOW.total_seconds() // 3600)}


@requires("read")
async def rules_diff_json(request: web.Request) -> web.Response:
    old, new = request.query.get("old", ""), request.query.get("new", "")
    if not old or not new:
        raise ProblemError(
            400, "Bad query", errors=[FieldError("old", "give old= and new= versions")]
        )
    result = await rules_diff(request, old, new)
    if "missing" in result:
        raise ProblemError(
            404, "Not Found", f"the files of version {', '.join(result['missing'])} were not kept"
        )
    return json_response(result)
