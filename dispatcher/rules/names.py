"""Region names as reporters write them, folded so that spellings compare equal.

Used when the rules are checked (two regions of one name at one depth are an error) and at
run time, when a report names its region instead of giving its code
(`RuleSet.resolve_region`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dispatcher.model import Region

# Arabic spellings vary in the hamza on alef, in tatweel and in short-vowel marks.
_ARABIC_FOLD = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ـ": None})
_HARAKAT = re.compile("[\u064b-\u0652\u0670]")


def name_key(name: str) -> str:
    """A region name reduced so that spellings a reporter may use compare equal."""
    folded = _HARAKAT.sub("", name.translate(_ARABIC_FOLD))
    return " ".join(folded.casefold().replace("'", "").replace("’", "").split())


def region_names(regions: Iterable[Region]) -> dict[str, tuple[str, ...]]:
    """Every name, Arabic name and alias (by `name_key`) and the regions that carry it."""
    out: dict[str, list[str]] = {}
    for region in regions:
        for name in {name_key(n) for n in (region.name, region.name_ar, *region.aliases)}:
            out.setdefault(name, []).append(region.id)
    return {name: tuple(ids) for name, ids in out.items()}
