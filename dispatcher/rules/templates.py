"""Operators' alert texts: rules/templates.yaml, optional, checked like the other rule files.

Per language, any of three lines may be replaced: `title`, `totals` (the body's first line)
and `footer` (its last). A template is text with `{field}` places, nothing more: no
attribute or index access, conversions or format specs, so a template can only show the
values offered to it (sandboxed by construction). Unknown fields are errors at
file:line:column, with a close match suggested.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from dispatcher.model import LOCALES
from dispatcher.rules.errors import suggest
from dispatcher.rules.schema import Checker
from dispatcher.rules.yamlmarks import Y

# place: the group's region in the reader's language; changes: what changed, worded
# ("new incidents: 3 · revised: 1", "still active, no change", ...); new, revised,
# retracted, confirmed: counts of incidents; killed, injured, trapped, rescued: the running
# totals; killed_high, injured_high, trapped_high, rescued_high: the same with, per
# incident, the highest figure any source reports where it is higher; incidents: live
# incidents in the alert; since: the previous update's time (HH:MM, may be empty); today:
# incidents in the region since midnight (may be empty).
VALUES = (
    "place", "changes", "new", "revised", "retracted", "confirmed", "killed", "injured",
    "trapped", "rescued", "killed_high", "injured_high", "trapped_high", "rescued_high",
    "incidents", "since", "today",
)  # fmt: skip
LINES = ("title", "totals", "footer")
FIELDS: dict[str, tuple[str, ...]] = dict.fromkeys(LINES, VALUES)

Templates = Mapping[str, Mapping[str, str]]  # locale -> line -> template


def parse_templates(doc: Y | None, c: Checker) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    if doc is None or doc.value is None:
        return out
    if not c.mapping(doc, "templates.yaml", LOCALES):
        return out
    for locale, lines in doc.value.items():
        if not c.mapping(lines, f"templates for '{locale}'", LINES):
            continue
        for line, y in lines.value.items():
            text = c.string(y, f"{locale}.{line}")
            if text is not None and _check(text, line, y, c):
                out.setdefault(locale, {})[line] = text
    return out


def _check(text: str, line: str, y: Y, c: Checker) -> bool:
    allowed = FIELDS[line]
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        c.p.error(y.loc, f"{line}: {exc}; write a literal brace as {{{{ or }}}}")
        return False
    ok = True
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if spec or conversion or not field.isidentifier():
            c.p.error(y.loc, f"{line}: write fields plainly, like {{place}}, not {{{field}...}}")
            ok = False
        elif field not in allowed:
            hint = suggest(field, allowed) or f"; {line} offers {', '.join(allowed)}"
            c.p.error(y.loc, f"{line}: unknown field '{field}'{hint}")
            ok = False
    return ok


def fill(template: str, values: Mapping[str, object]) -> str:
    """A checked template with its values (only plain `{field}` places remain)."""
    return template.format_map({k: str(v) for k, v in values.items()})
