"""Sources' trust tiers: rules/sources.yaml, optional, checked like the other rule files.

The file lists source ids under the tier they belong to; a source it does not name is
`other`, and without the file every source is:

    sources:
      own: [sy-civil-defence-idleb, sy-civil-defence-aleppo]
      trusted: [syrian-observatory]

A report's tier is decided when it is accepted and kept with it (dispatcher/counting.py
says what tiers do to an incident's figures). Unknown tiers and keys, ids that are not ids,
and a source listed twice are errors at file:line:column, with a close match suggested.
"""

from __future__ import annotations

import re

from dispatcher.counting import TIERS
from dispatcher.rules.errors import Loc
from dispatcher.rules.schema import Checker
from dispatcher.rules.yamlmarks import Y

# As a report's `source` (dispatcher/intake.py).
SOURCE_ID = re.compile(r"^[A-Za-z0-9._:@~-]{1,100}$")


def parse_sources(doc: Y | None, c: Checker) -> dict[str, str]:
    """Source id -> tier, for the sources the file names."""
    out: dict[str, str] = {}
    if doc is None or doc.value is None:
        return out
    if not c.mapping(doc, "sources.yaml", ("sources",)):
        return out
    tiers = doc.value.get("sources")
    if tiers is None or tiers.value is None:
        return out
    if not c.mapping(tiers, "the tiers under sources", TIERS):
        return out
    first: dict[str, tuple[str, Loc]] = {}
    for tier, y in tiers.value.items():
        if tier not in TIERS:
            continue  # reported by the mapping check, with a suggestion
        if y.value is None:
            continue
        for source, loc in c.strings(y, f"the sources of tier '{tier}'"):
            if not SOURCE_ID.match(source):
                c.p.error(
                    loc,
                    f"'{source}' is not a source id: write it as reporters send it in "
                    "`source` (letters, digits and . _ : @ ~ -, no spaces)",
                )
                continue
            if source in first:
                was, where = first[source]
                c.p.error(
                    loc,
                    f"source '{source}' is listed twice (first at line {where.line}, under "
                    f"'{was}'); a source has one tier",
                )
                continue
            first[source] = (tier, loc)
            out[source] = tier
    return out
