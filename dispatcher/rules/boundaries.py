"""Region outlines from GeoJSON: reading `boundary:` files, and importing COD-AB or
geoBoundaries layers into region entries.

Survey outlines have thousands of points, too many for an operator's YAML. A region in
`regions.yaml` names a file instead (`boundary: boundaries/syr_adm2.geojson`), and its
outline is the feature of that file whose `properties.id` is the region's id. The import
writes such a file from a published layer, with only the ids and the (repaired, rounded)
outlines, and appends one short entry per region to `regions.yaml`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity, make_valid

from dispatcher.rules.errors import Loc, Problems

OUTLINES = ("Polygon", "MultiPolygon")


def boundary_path(folder: Path, ref: str) -> Path | None:
    """The file a `boundary:` names, or None when it points outside the rules folder."""
    rel = PurePosixPath(ref)
    if rel.is_absolute() or ".." in rel.parts or not ref.endswith(".geojson"):
        return None
    return folder / rel


def read_outlines(
    folder: Path, wanted: Mapping[str, list[tuple[str, Loc]]], problems: Problems
) -> tuple[dict[str, BaseGeometry], list[tuple[str, bytes]]]:
    """Outlines by region id from the boundary files `wanted` names (file -> [(region id,
    where the region names the file)]). Also returns each file's bytes, for the version hash."""
    outlines: dict[str, BaseGeometry] = {}
    contents: list[tuple[str, bytes]] = []
    for ref in sorted(wanted):
        users = wanted[ref]
        path = boundary_path(folder, ref)
        if path is None:
            for _, loc in users:
                problems.error(
                    loc,
                    f"boundary '{ref}' must be a .geojson file inside the rules folder, "
                    "like boundaries/districts.geojson",
                )
            continue
        try:
            raw = path.read_bytes()
            doc = json.loads(raw)
        except OSError as exc:
            problems.error(users[0][1], f"cannot read boundary file '{ref}': {exc.strerror}")
            continue
        except ValueError as exc:
            problems.error(users[0][1], f"boundary file '{ref}' is not valid JSON: {exc}")
            continue
        contents.append((ref, raw))
        features = _features_by_id(doc)
        for rid, loc in users:
            feature = features.get(rid)
            if feature is None:
                problems.error(
                    loc,
                    f"boundary file '{ref}' has no feature with properties.id '{rid}'; "
                    "import the region again or fix its id",
                )
                continue
            geom, why = _outline(feature)
            if geom is None:
                problems.error(loc, f"the outline of '{rid}' in '{ref}' {why}")
                continue
            outlines[rid] = geom
    return outlines, contents


def _features_by_id(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        return {}
    out = {}
    for feature in doc["features"]:
        props = feature.get("properties") if isinstance(feature, dict) else None
        if isinstance(props, dict) and isinstance(props.get("id"), str):
            out[props["id"]] = feature
    return out


def _outline(feature: Any) -> tuple[BaseGeometry | None, str]:
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in OUTLINES:
        return None, "must be a Polygon or MultiPolygon"
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException) as exc:
        return None, f"cannot be read: {exc}"
    if geom.is_empty:
        return None, "is empty"
    if not geom.is_valid:
        return None, (
            f"is not valid ({explain_validity(geom)}); the outline must not cross itself: "
            "`dispatcher regions import` repairs such outlines"
        )
    return geom, ""


# --- import ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    id: str
    name: str
    name_ar: str
    parent: str | None
    aliases: tuple[str, ...]
    outline: BaseGeometry
    repaired: bool


@dataclass(frozen=True)
class Fields:
    id: str
    name: str
    name_ar: str | None = None
    parent: str | None = None  # a property naming each feature's parent region
    aliases: tuple[str, ...] = ()


class ImportError_(ValueError):
    """The layer cannot be imported; the message says why, for a person."""


def read_layer(
    doc: Any, fields: Fields, *, parent: str | None, precision: float
) -> tuple[list[Imported], list[str]]:
    """Regions from a GeoJSON FeatureCollection, and notes for the operator (repairs,
    missing Arabic names). Raises ImportError_ when the layer is not usable at all."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise ImportError_("the file is not a GeoJSON FeatureCollection")
    out: list[Imported] = []
    notes: list[str] = []
    seen: set[str] = set()
    for n, feature in enumerate(doc.get("features") or [], start=1):
        props = feature.get("properties") or {}
        rid = _text(props.get(fields.id))
        if rid is None:
            raise ImportError_(
                f"feature {n} has no '{fields.id}'; the layer's fields are: "
                + ", ".join(sorted(props))
            )
        if rid in seen:
            raise ImportError_(f"two features have the id '{rid}'")
        seen.add(rid)
        name = _text(props.get(fields.name))
        if name is None:
            raise ImportError_(f"feature '{rid}' has no '{fields.name}'")
        name_ar = _text(props.get(fields.name_ar)) if fields.name_ar else None
        if name_ar is None:
            notes.append(f"{rid}: no Arabic name; the English name stands in until you add one")
        region_parent = parent
        if fields.parent is not None:
            region_parent = _text(props.get(fields.parent))
            if region_parent is None:
                raise ImportError_(f"feature '{rid}' has no '{fields.parent}'")
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict) or geometry.get("type") not in OUTLINES:
            raise ImportError_(f"feature '{rid}' is not a Polygon or MultiPolygon")
        geom = shape(geometry)
        repaired = not geom.is_valid
        if repaired:
            fixed = _polygons_only(make_valid(geom))
            notes.append(repair_note(rid, explain_validity(geom), geom.area, fixed.area))
            geom = fixed
        if precision > 0:
            geom = _polygons_only(shapely.set_precision(geom, precision))
        aliases = tuple(a for a in (_text(props.get(f)) for f in fields.aliases) if a and a != name)
        out.append(Imported(rid, name, name_ar or name, region_parent, aliases, geom, repaired))
    if not out:
        raise ImportError_("the layer has no features")
    return out, notes


_WHERE = re.compile(r"^(?P<why>.*?)\[(?P<x>\S+) (?P<y>\S+)\]$")


def repair_note(rid: str, why: str, area_before: float, area_after: float) -> str:
    """What was wrong with a layer's outline, where, and what the repair kept, in words:
    `explain_validity`'s "Ring Self-intersection[36.44227 35.91136]" becomes "crosses
    itself at (36.44227, 35.91136)"."""
    found = _WHERE.match(why)
    what, where = (found["why"], f" at ({found['x']}, {found['y']})") if found else (why, "")
    what = "crosses itself" if "self-intersection" in what.lower() else f"is not valid ({what})"
    if abs(area_after - area_before) <= 1e-9 * max(abs(area_before), 1e-12):
        kept = "its area is unchanged"
    else:
        kept = f"its area went from {area_before:.6g} to {area_after:.6g} square degrees"
    return f"{rid}: the source outline {what}{where}; repaired with make_valid, {kept}"


def _text(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _polygons_only(geom: BaseGeometry) -> BaseGeometry:
    """make_valid can leave stray lines or points beside the area: keep the area."""
    if geom.geom_type in OUTLINES:
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in OUTLINES]
    polys = [p for g in parts for p in (g.geoms if g.geom_type == "MultiPolygon" else [g])]
    return shapely.MultiPolygon(polys) if len(polys) != 1 else polys[0]


def boundary_file(regions: Iterable[Imported]) -> str:
    """The GeoJSON a `boundary:` reference reads: only ids and outlines."""
    features = [
        {
            "type": "Feature",
            "properties": {"id": r.id},
            "geometry": shapely.geometry.mapping(r.outline),
        }
        for r in regions
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))


IMPORT_HEADER = "# imported from "


def region_entries(
    regions: Iterable[Imported], ref: str, header: str, repairs: Iterable[str] = ()
) -> str:
    """YAML lines for `regions.yaml`, one flow mapping per region (JSON strings are YAML),
    under a comment naming the layer (`header`) and the outlines the import repaired."""
    lines = [f"  {IMPORT_HEADER}{header}", *(f"  #   {note}" for note in repairs)]
    for r in regions:
        parts = [
            f"id: {json.dumps(r.id)}",
            f"name: {json.dumps(r.name, ensure_ascii=False)}",
            f"name_ar: {json.dumps(r.name_ar, ensure_ascii=False)}",
        ]
        if r.parent is not None:
            parts.append(f"parent: {json.dumps(r.parent)}")
        if r.aliases:
            parts.append(f"aliases: {json.dumps(list(r.aliases), ensure_ascii=False)}")
        parts.append(f"boundary: {json.dumps(ref)}")
        lines.append("  - {" + ", ".join(parts) + "}")
    return "\n".join(lines) + "\n"
