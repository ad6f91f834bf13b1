"""`dispatcher regions import`: a published boundary layer into the operators' rules.

Writes the outlines to `boundaries/<name>.geojson` and one short entry per region to
`regions.yaml`, then checks the whole rule set in a scratch copy first: an import that would
leave the rules broken changes nothing and says why, file:line, like any other edit.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from dispatcher.rules.boundaries import (
    IMPORT_HEADER,
    Fields,
    Imported,
    boundary_file,
    read_layer,
    region_entries,
)
from dispatcher.rules.errors import Problems, RuleError
from dispatcher.rules.load import check_rules
from dispatcher.rules.yamlmarks import Y, load_marked


@dataclass(frozen=True)
class ImportResult:
    regions: list[Imported]
    notes: list[str]
    boundary: Path
    replaced: list[str]
    errors: list[RuleError]  # non-empty: nothing was written


def import_regions(
    folder: Path,
    layer: Path,
    fields: Fields,
    *,
    parent: str | None = None,
    name: str | None = None,
    precision: float = 1e-5,
    replace_existing: bool = False,
) -> ImportResult:
    """Import `layer` into the rules in `folder`. Raises ImportError_ for an unusable layer."""
    doc = json.loads(layer.read_text(encoding="utf-8"))
    regions, notes = read_layer(doc, fields, parent=parent, precision=precision)
    ref = f"boundaries/{name or layer.stem}.geojson"
    regions_yaml = (folder / "regions.yaml").read_text(encoding="utf-8")
    kept, replaced = _drop_entries(
        regions_yaml, str(folder / "regions.yaml"), {r.id for r in regions} if replace_existing
        else set(),
    )  # fmt: skip
    regions = [_keep_old_names(r, replaced) for r in regions]
    named = {r.id for r in regions if r.name_ar != r.name}
    notes = [n for n in notes if not (n.endswith("until you add one") and n.split(":")[0] in named)]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    header = (
        f"{layer.name} on {stamp} by `dispatcher regions import` "
        f"(id {fields.id}, name {fields.name}); outlines in {ref}"
    )
    repaired = {r.id for r in regions if r.repaired}
    repairs = [n for n in notes if n.split(":")[0] in repaired and "make_valid" in n]
    new_text = kept.rstrip("\n") + "\n\n" + region_entries(regions, ref, header, repairs)
    outlines = boundary_file(regions)

    with tempfile.TemporaryDirectory() as scratch:
        trial = Path(scratch) / "rules"
        shutil.copytree(folder, trial)
        _write(trial / ref, outlines)
        _write(trial / "regions.yaml", new_text)
        errors = [
            RuleError(e.loc._replace(file=e.loc.file.replace(str(trial), str(folder))), e.message)
            for e in check_rules(trial)
            if e.severity == "error"
        ]
    if errors:
        return ImportResult(regions, notes, folder / ref, list(replaced), errors)
    # The outlines first: until regions.yaml names them, a reload does not read them.
    _write(folder / ref, outlines)
    _write(folder / "regions.yaml", new_text)
    return ImportResult(regions, notes, folder / ref, list(replaced), [])


def _write(path: Path, text: str) -> None:
    """Replace a file whole, so the rules watch never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _drop_entries(text: str, file: str, ids: set[str]) -> tuple[str, dict[str, Y]]:
    """The text without the region entries whose id is in `ids`, and those entries."""
    if not ids:
        return text, {}
    doc = load_marked(text, file, Problems())
    items = doc.value.get("regions") if doc is not None and doc.is_map() else None
    if items is None or not items.is_list():
        return text, {}
    lines = text.splitlines(keepends=True)
    starts = [item.loc.line for item in items.value] + [len(lines) + 1]
    drop: set[int] = set()
    found: dict[str, Y] = {}
    for i, item in enumerate(items.value):
        rid = item.value.get("id") if item.is_map() else None
        if rid is None or rid.value not in ids:
            continue
        found[str(rid.value)] = item
        end = starts[i + 1] - 1
        # Comments and blank lines before the next entry belong to it, not to this one.
        while end > starts[i]:
            stripped = lines[end - 1].strip()
            if stripped and not stripped.startswith("#"):
                break
            end -= 1
        drop.update(range(starts[i], end + 1))
        # The comment an earlier import wrote above its first entry goes with that entry,
        # so that importing a layer again leaves one such comment, not two.
        above = starts[i] - 1
        while above >= 1 and lines[above - 1].strip().startswith("#"):
            if lines[above - 1].strip().startswith(IMPORT_HEADER):
                drop.update(range(above, starts[i]))
                break
            above -= 1
    return "".join(line for n, line in enumerate(lines, start=1) if n not in drop), found


def _keep_old_names(region: Imported, old: dict[str, Y]) -> Imported:
    """A replaced entry's aliases, and its Arabic name where the layer has none, live on."""
    entry = old.get(region.id)
    if entry is None:
        return region
    plain = entry.plain()
    aliases = [a for a in plain.get("aliases") or [] if isinstance(a, str)]
    merged = tuple(dict.fromkeys([*region.aliases, *aliases]))
    name_ar = region.name_ar
    if name_ar == region.name and isinstance(plain.get("name_ar"), str):
        name_ar = plain["name_ar"]
    return replace(region, aliases=merged, name_ar=name_ar)
