"""An operator's mistake is reported as file:line:column with a fix, all in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.rules.errors import RulesInvalid
from dispatcher.rules.load import check_rules, load_rules

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "testdata" / "rules-bad"


def lines(case: str) -> list[str]:
    return [str(p).removeprefix(f"{BAD / case}/") for p in check_rules(BAD / case)]


CASES = {
    "unknown-key": [
        "routes.yaml:3:3: unknown key 'group_wiat' in a route; did you mean 'group_wait'?",
        "routes.yaml:6:7: unknown key 'reciever' in a route; did you mean 'receiver'?",
    ],
    "unknown-team": [
        "routes.yaml:5:17: unknown team 'idleb-centre'; did you mean 'idleb-center'?",
    ],
    "bad-duration": [
        "routes.yaml:3:15: group_wait: '30 seconds' is not a duration; "
        "write it like 30s, 2m, 1h30m or 500ms",
        "routes.yaml:4:19: group_interval must be a duration like 30s, 2m or 1h30m",
    ],
    "duplicate-id": [
        "teams.yaml:6:9: duplicate team id 'idleb-center' (first at line 2)",
        "teams.yaml:13:14: duplicate leader id 'lead-1' (first at line 5); "
        "a leader belongs to one team",
        "teams.yaml:13:39: unknown locale 'fr'; use one of ar, en",
    ],
    "cycle": [
        "regions.yaml:5:13: regions form a cycle: SY07 -> SY0703 -> SY07; "
        "a region cannot be inside itself",
    ],
    "bowtie": [
        "regions.yaml:5:14: polygon is not valid (Self-intersection[36.5 35.85]); "
        "check the order of the points: the outline must not cross itself",
        "regions.yaml:10:14: polygon must be a list of at least 3 [lon, lat] points",
    ],
    "yaml-syntax": [
        "teams.yaml:5:3: YAML syntax: expected ',' or ']', but got '-' "
        "(while parsing a flow sequence that starts at line 4)",
    ],
    "missing-file": [
        "teams.yaml:1:1: missing file: the rules need regions.yaml, teams.yaml, routes.yaml",
    ],
    "many": [
        "routes.yaml:3:14: cannot group by 'regoin'; did you mean 'region'?",
        "routes.yaml:5:25: unknown region 'SY0730'; did you mean 'SY0703'?",
        "routes.yaml:5:42: unknown kind 'airstrikes'; did you mean 'airstrike'?",
        "routes.yaml:8:17: unknown team 'harim-centre'; did you mean 'harim-center'?",
        "routes.yaml:9:23: group_interval: 'soon' is not a duration; "
        "write it like 30s, 2m, 1h30m or 500ms",
    ],
    "bad-matchers": [
        'routes.yaml:4:23: killed must be a count like 5 (at least 5) or a comparison like ">= 5"'
        " (quote it in YAML)",
        "routes.yaml:4:48: unknown status 'confirmd'; did you mean 'confirmed'?",
        "routes.yaml:6:31: unknown region 'SY0730'; did you mean 'SY0703'?",
        "routes.yaml:6:40: unknown key 'colour' in match.not; "
        "allowed: regions, kinds, statuses, sources",
    ],
    "escalation": [
        "teams.yaml:5:18: unknown team 'central-dsk'; did you mean 'central-desk'?",
        "teams.yaml:11:18: team 'harim-center' cannot escalate to itself",
        "teams.yaml:14:5: a team that escalates needs both escalate_after and escalate_to",
    ],
    "inhibit": [
        "routes.yaml:10:23: unknown route 'mass-casulty'; did you mean 'mass-casualty'?",
        "routes.yaml:12:10: for: 'soon' is not a duration; write it like 30s, 2m, 1h30m or 500ms",
    ],
    "templates": [
        "templates.yaml:2:10: title: unknown field 'changs'; did you mean 'changes'?",
        "templates.yaml:3:11: totals: write fields plainly, like {place}, not "
        "{killed.__class__...}",
        "templates.yaml:4:11: footer: write fields plainly, like {place}, not {today...}",
        "templates.yaml:5:1: unknown key 'fr' in templates.yaml; allowed: ar, en",
    ],
    "sources": [
        "sources.yaml:3:3: unknown key 'trustd' in the tiers under sources; "
        "did you mean 'trusted'?",
        "sources.yaml:6:7: source 'sy-civil-defence-idleb' is listed twice (first at line 2, "
        "under 'own'); a source has one tier",
        "sources.yaml:7:7: 'civil defence aleppo' is not a source id: write it as reporters "
        "send it in `source` (letters, digits and . _ : @ ~ -, no spaces)",
        "sources.yaml:8:3: unknown key 'others' in the tiers under sources; did you mean 'other'?",
        "sources.yaml:9:1: unknown key 'counting' in sources.yaml; allowed: sources",
    ],
    "receivers": [
        "routes.yaml:5:17: unknown team or leader 'idleb-lead-one'; did you mean 'idleb-lead-1'?",
        "routes.yaml:7:19: warning: group_wait has no effect on an immediate route: each "
        "report is pushed at once",
        "teams.yaml:6:9: team id 'harim-lead' is also a leader's id (line 9); a route's "
        "receiver names either, so give one of them another id",
    ],
    "surge": [
        "routes.yaml:3:3: the top route takes every report; 'surge' belongs on a child route",
        "routes.yaml:6:14: surge needs 'within', the window incidents are counted in, "
        "like within: 30m",
        "routes.yaml:8:26: surge.incidents '< 3' cannot open a surge: a surge is a rate that "
        'rises to a threshold; write it like ">= 8"',
        "routes.yaml:10:26: surge.incidents '1' makes every incident a surge; use a threshold "
        "of 2 or more, or a route without surge",
        "routes.yaml:12:42: surge.within: 'soon' is not a duration; write it like 30s, 2m, "
        "1h30m or 500ms",
        "routes.yaml:12:48: unknown key 'per' in surge; allowed: incidents, within",
        "routes.yaml:15:17: a surge route always lets reports go on to the routes after it; "
        "remove 'continue: false'",
        "routes.yaml:16:18: a surge route pushes when the rate is reached, not each report; "
        "remove 'immediate: true'",
        "routes.yaml:17:24: warning: repeat_interval has no effect on a surge route: it repeats "
        "at most every group_interval while the rate holds, and closes when its window is empty",
        "routes.yaml:18:14: a surge route must match retracted reports too, or a retracted "
        "incident keeps counting; remove the status matcher that leaves them out",
        "routes.yaml:20:9: a surge route counts incidents and has no routes below it; put these "
        "routes beside it",
        'routes.yaml:22:14: surge must be a mapping like {incidents: ">= 8", within: 30m}',
    ],
    "shadowed": [
        "routes.yaml:6:7: warning: route 'harim' can never match: the earlier route "
        "'everything' (line 4) takes every report it would; move it up or set "
        "'continue: true' on the earlier one",
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_mistake_is_named_where_it_is(case: str) -> None:
    assert lines(case) == CASES[case]


def test_every_bad_fixture_has_a_case() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(c for c in CASES if c != "shadowed"))
def test_errors_refuse_the_whole_rule_set(case: str) -> None:
    with pytest.raises(RulesInvalid) as err:
        load_rules(BAD / case)
    assert len(err.value.errors) == len([c for c in CASES[case] if ": warning: " not in c])


def test_warnings_do_not_refuse_the_rules() -> None:
    rules = load_rules(BAD / "shadowed")
    assert [w.message.split(":")[0] for w in rules.warnings] == ["route 'harim' can never match"]


def test_the_shipped_rules_are_clean() -> None:
    assert check_rules(ROOT / "rules") == []
    rules = load_rules(ROOT / "rules")
    assert rules.tier_of("sy-civil-defence-idleb") == "own"
    assert rules.tier_of("syrian-observatory") == "trusted"
    assert rules.tier_of("someone-new") == "other", "a source the file does not name"
    assert {"SY07", "SY0703", "SY02"} <= set(rules.regions)
    assert rules.approximate == {"SY"}, "only Syria's outline is hand-drawn, and marked so"


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    for name in ("regions.yaml", "teams.yaml", "routes.yaml"):
        (tmp_path / name).write_text((ROOT / "tests/testdata/rules-e2e" / name).read_text())
    (tmp_path / "teams.yaml").write_text("teams: !!python/object/apply:os.system ['true']\n")
    problems = [str(p) for p in check_rules(tmp_path)]
    assert problems[0] == (
        f"{tmp_path}/teams.yaml:1:8: unsupported YAML tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'; write plain values"
    )
    (tmp_path / "teams.yaml").write_text("teams: !!python/name:os.system\n")
    assert "python/name:os.system" in str(check_rules(tmp_path)[0])
