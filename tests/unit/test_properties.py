"""Properties, tried on many generated inputs (Hypothesis, derandomized: the same cases on
every run): any valid report round-trips; any field of the wrong type is refused with the
field named; NDJSON splits only on LF; the rule loader reports problems and never raises."""

from __future__ import annotations

import json
import shutil
import string
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.intake import ReportIn, parse_report, parse_report_json, report_json, to_report
from dispatcher.model import KINDS
from dispatcher.rules.errors import RuleError, RulesInvalid
from dispatcher.rules.load import check_rules, load_rules
from dispatcher.strictjson import loads, ndjson_lines
from tests.support.harness import TESTDATA

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

ident = st.text(string.ascii_letters + string.digits + "._:@~-", min_size=1, max_size=40)
text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=200)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
times = st.builds(
    lambda at, tz: at.replace(tzinfo=UTC).astimezone(tz),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(2026, 11, 24)),
    offsets,
)
count = st.integers(0, 1_000_000)


@st.composite
def reports(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": draw(ident),
        "source": draw(ident),
        "kind": draw(st.sampled_from(sorted(KINDS))),
        "occurred_at": draw(times).isoformat(),
        "location": {
            "lat": draw(st.floats(-90, 90)),
            "lon": draw(st.floats(-180, 180)),
        },
    }
    if draw(st.booleans()):
        body["casualties"] = draw(
            st.fixed_dictionaries(
                {}, optional={k: count for k in ("killed", "injured", "trapped", "rescued")}
            )
        )
    optional = {
        "status": st.sampled_from(["unconfirmed", "confirmed", "retracted"]),
        "revision": st.integers(1, 1_000_000),
        "notes": text,
        "incident": ident,
    }
    body.update(draw(st.fixed_dictionaries({}, optional=optional)))
    return body


@SETTINGS
@given(reports())
def test_any_valid_report_round_trips(body: dict[str, Any]) -> None:
    parsed = parse_report(body, now=NOW)
    assert isinstance(parsed, ReportIn), parsed
    raw = json.dumps(body, ensure_ascii=False).encode()
    fast = parse_report_json(raw, now=NOW)
    if fast is None:  # not sure there is no repeated key (a \u escape): the general path
        fast = parse_report(loads(raw), now=NOW)
    assert fast == parsed, "the fast path reads the same report"
    shown = report_json(to_report(parsed, region="SY07"))
    assert datetime.fromisoformat(shown["occurred_at"]) == datetime.fromisoformat(
        body["occurred_at"]
    )
    assert shown["location"] == body["location"]
    assert {k: shown[k] for k in ("id", "source", "kind")} == {
        k: body[k] for k in ("id", "source", "kind")
    }
    for name, value in body.get("casualties", {}).items():
        assert shown["casualties"][name] == value


# What each field is not: values of every other JSON type.
WRONG: dict[str, list[Any]] = {
    "id": [17, 1.5, True, None, [], {}],
    "source": [17, True, None, ["a"]],
    "kind": [1, True, None, ["fire"]],
    "occurred_at": [1764000000, 1.5, True, None, [], {}, "yesterday", "2026-11-24"],
    "location": [1, "here", True, [36.1, 36.6]],
    "location.lat": ["36.1", True, None, [], {}],
    "location.lon": ["36.6", False, None, []],
    "casualties": [1, "none", True, []],
    "casualties.killed": ["3", 3.0, True, None, [], -1],
    "casualties.rescued": ["1", 1.5, False],
    "status": [1, True, None],
    "revision": ["2", 2.0, True, 0],
    "notes": [1, True, [], {}],
    "incident": [1, True, []],
}


mutations = st.sampled_from(sorted(WRONG)).flatmap(
    lambda f: st.tuples(st.just(f), st.sampled_from(WRONG[f]))
)


@SETTINGS
@given(reports(), mutations)
def test_a_field_of_the_wrong_type_is_refused_with_the_field_named(
    body: dict[str, Any], mutation: tuple[str, Any]
) -> None:
    field, value = mutation
    outer, _, inner = field.partition(".")
    if inner:
        body[outer] = {**body.get(outer, {}), inner: value}
    else:
        body[field] = value
    for result in (
        parse_report(body, now=NOW),
        parse_report_json(json.dumps(body).encode(), now=NOW),
    ):
        assert isinstance(result, list), f"{field}={value!r} was accepted"
        assert field in [e.field for e in result]


lines = st.lists(
    st.fixed_dictionaries(
        {"notes": st.text(st.characters(exclude_categories=["Cs"]), max_size=30)},
        optional={"tricky": st.sampled_from(["\u2028", "\u2029", "\u0085", "\r", "a\nb"])},
    ),
    min_size=1,
    max_size=8,
)


@SETTINGS
@given(lines, st.sampled_from(["\n", "\r\n"]), st.lists(st.sampled_from(["", " ", "\t"])))
def test_ndjson_splits_only_on_line_feeds(
    items: list[dict[str, str]], end: str, blanks: list[str]
) -> None:
    text = end.join(json.dumps(x, ensure_ascii=False) for x in items)
    text += end + end.join(blanks) + end
    decoded = [loads(line) for line in ndjson_lines(text.encode())]
    assert decoded == items


yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(
        ["30s", "9999999999999h", "0s", "1h30m", ">= 10", "SY07", "idleb-center", "[", "*", ""]
    ),
)
keys = st.one_of(
    st.sampled_from(
        ["route", "routes", "receiver", "match", "group_by", "group_wait", "group_interval",
         "repeat_interval", "close_after", "name", "continue", "immediate", "teams", "id",
         "leaders", "locale", "regions", "parent", "polygon", "escalate_after",
         "escalate_to", "fallback", "killed", "kinds", "inhibit", "ttl", "payload"]
    ),
    st.text(max_size=10),
)  # fmt: skip
documents = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


@SETTINGS
@given(st.sampled_from(["routes.yaml", "teams.yaml", "regions.yaml"]), documents)
def test_the_rule_loader_reports_problems_and_never_raises(name: str, document: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rules"
        shutil.copytree(TESTDATA / "rules-e2e", folder)
        (folder / name).write_text(yaml.safe_dump(document, allow_unicode=True))
        problems = check_rules(folder)
        assert all(isinstance(p, RuleError) for p in problems)
        errors = [p for p in problems if p.severity == "error"]
        try:
            load_rules(folder)
            refused: list[RuleError] = []
        except RulesInvalid as exc:
            refused = list(exc.errors)
        assert len(refused) == len(errors), "load refuses exactly when check finds errors"


@SETTINGS
@given(st.sampled_from(["routes.yaml", "teams.yaml"]), st.text(max_size=200))
def test_the_rule_loader_survives_any_text(name: str, content: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rules"
        shutil.copytree(TESTDATA / "rules-e2e", folder)
        (folder / name).write_text(content, encoding="utf-8", errors="surrogatepass")
        assert all(isinstance(p, RuleError) for p in check_rules(folder))
