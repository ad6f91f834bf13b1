"""The shipped regions are OCHA COD-AB's: each town in its real district, each P-code and
spelling a reporter uses known, each district routed to its governorate's team, and points
50 m either side of a district border placed as the outlines say, remembered cells or not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import shapely
from shapely.geometry import LineString, Point, shape
from shapely.geometry.base import BaseGeometry

from dispatcher.rules.load import RuleSet, load_rules
from tests.unit.test_route import report

ROOT = Path(__file__).resolve().parents[2]
OUTLINES = ROOT / "rules" / "boundaries" / "syria-aleppo-idleb-cod-ab.geojson"

ALEPPO = ["SY0200", "SY0202", "SY0203", "SY0204", "SY0205", "SY0206", "SY0207", "SY0208"]
IDLEB = ["SY0700", "SY0702", "SY0703", "SY0704", "SY0705"]
DISTRICTS = ALEPPO + IDLEB
METRES_PER_DEGREE = 111_320.0


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(ROOT / "rules")


@pytest.fixture(scope="module")
def outlines() -> dict[str, BaseGeometry]:
    """The shipped outlines by P-code, read with shapely alone: the ground truth."""
    doc = json.loads(OUTLINES.read_text(encoding="utf-8"))
    return {f["properties"]["id"]: shape(f["geometry"]) for f in doc["features"]}


def test_the_region_ids_are_cod_abs_and_no_others(shipped: RuleSet) -> None:
    assert set(shipped.regions) == {"SY", "SY02", "SY07", *DISTRICTS}
    for rid in ALEPPO:
        assert shipped.region_path(rid) == ("SY", "SY02", rid)
    for rid in IDLEB:
        assert shipped.region_path(rid) == ("SY", "SY07", rid)
    assert shipped.region_name("SY0705", "en") == "Ariha"
    assert shipped.region_name("SY0702", "ar") == "معرة النعمان"
    assert shipped.region_name("SY0700", "ar") == "مركز إدلب"


@pytest.mark.parametrize("rid", DISTRICTS)
def test_a_point_inside_each_district_is_placed_in_it(
    shipped: RuleSet, outlines: dict[str, BaseGeometry], rid: str
) -> None:
    inside = outlines[rid].representative_point()
    assert shipped.locate(None, inside.y, inside.x) == rid


@pytest.mark.parametrize(
    ("town", "lat", "lon", "district"),
    [
        ("Atarib", 36.1386, 36.8296, "SY0200"),
        ("Darat Izza", 36.2817, 36.8508, "SY0200"),
        ("Aleppo city", 36.2021, 37.1343, "SY0200"),
        ("Al Bab", 36.3710, 37.5157, "SY0202"),
        ("Deir Hafer", 36.1569, 37.7072, "SY0202"),
        ("Afrin", 36.5119, 36.8695, "SY0203"),
        ("Azaz", 36.5862, 37.0446, "SY0204"),
        ("Tell Rifaat", 36.4706, 37.0967, "SY0204"),
        ("Manbij", 36.5281, 37.9549, "SY0205"),
        ("Ain al-Arab (Kobani)", 36.8911, 38.3539, "SY0206"),
        ("As-Safira", 36.0772, 37.3722, "SY0207"),
        ("Jarablus", 36.8175, 38.0114, "SY0208"),
        ("Idleb city", 35.9306, 36.6339, "SY0700"),
        ("Saraqib", 35.8644, 36.8006, "SY0700"),
        ("Binnish", 35.9569, 36.7139, "SY0700"),
        ("Maarat al-Numan", 35.6478, 36.6744, "SY0702"),
        ("Khan Shaykhun", 35.4419, 36.6463, "SY0702"),
        ("Kafr Nabl", 35.6133, 36.5611, "SY0702"),
        ("Harim", 36.2071, 36.5186, "SY0703"),
        ("Salqin", 36.1386, 36.4538, "SY0703"),
        ("Sarmada", 36.1808, 36.7236, "SY0703"),
        ("Jisr al-Shughur", 35.8126, 36.3189, "SY0704"),
        ("Ariha", 35.8128, 36.6103, "SY0705"),
    ],
)
def test_towns_are_placed_in_their_districts(
    shipped: RuleSet, town: str, lat: float, lon: float, district: str
) -> None:
    assert shipped.locate(None, lat, lon) == district, town


@pytest.mark.parametrize(
    ("given", "region"),
    [
        ("SY0705", "SY0705"),
        ("Aleppo", "SY02"),
        ("Halab", "SY02"),
        ("حلب", "SY02"),
        ("Idleb", "SY07"),  # the governorate: shallower than Idleb district
        ("Idlib", "SY07"),
        ("Edlib", "SY07"),
        ("ادلب", "SY07"),
        ("Idleb city", "SY0700"),
        ("مركز إدلب", "SY0700"),
        ("Aleppo city", "SY0200"),
        ("Jebel Saman", "SY0200"),
        ("Al-Bab", "SY0202"),
        ("الباب", "SY0202"),
        ("Efrin", "SY0203"),
        ("Azaz", "SY0204"),
        ("Aazaz", "SY0204"),
        ("أعزاز", "SY0204"),  # with the hamza the layer's name lacks
        ("Manbij", "SY0205"),
        ("Kobani", "SY0206"),
        ("Ayn al-Arab", "SY0206"),
        ("As-Safirah", "SY0207"),
        ("Safira", "SY0207"),
        ("Jarabulus", "SY0208"),
        ("Maarat al-Numan", "SY0702"),
        ("Ma'arrat an-Nu'man", "SY0702"),
        ("Maarrat al-Nouman", "SY0702"),
        ("معرة النعمان", "SY0702"),
        ("Harem", "SY0703"),
        ("Jisr al-Shughur", "SY0704"),
        ("Jisr ash-Shughur", "SY0704"),
        ("Ariha", "SY0705"),
        ("أريحا", "SY0705"),
    ],
)
def test_the_spellings_reporters_use_resolve(shipped: RuleSet, given: str, region: str) -> None:
    assert shipped.resolve_region(given) == region


@pytest.mark.parametrize("rid", DISTRICTS)
def test_each_district_goes_to_its_governorates_team(shipped: RuleSet, rid: str) -> None:
    teams = [r.receiver for r in shipped.routes_for(report(rid))]
    if rid == "SY0703":
        assert teams == ["harim-center", "idleb-center"]
    elif rid in IDLEB:
        assert teams == ["idleb-center"]
    else:
        assert teams == ["aleppo-center"]


def test_atarib_alerts_aleppo_not_harim(shipped: RuleSet) -> None:
    """The issue's strike: placed in Jebel Saman, it reaches the Aleppo team alone."""
    region = shipped.locate(None, 36.1386, 36.8296)
    assert shipped.region_path(region) == ("SY", "SY02", "SY0200")
    (aleppo,) = shipped.routes_for(report(region))
    assert aleppo.receiver == "aleppo-center"
    assert shipped.group_labels(aleppo, report(region)) == (("region", "SY02"),), (
        "counted with Aleppo governorate's strikes"
    )


def _border_points(line: BaseGeometry, every_m: float) -> list[tuple[Point, float, float]]:
    """Points along a border, each with the unit normal (dlon, dlat) to the border there, in
    metres (the longitude scaled by cos(latitude))."""
    out = []
    parts = getattr(line, "geoms", [line])
    for part in parts:
        if not isinstance(part, LineString) or part.length == 0:
            continue
        steps = max(1, int(part.length * METRES_PER_DEGREE / every_m))
        for k in range(steps):
            at = part.interpolate((k + 0.5) / steps, normalized=True)
            ahead = part.interpolate(min(part.length, part.project(at) + 1e-4))
            behind = part.interpolate(max(0.0, part.project(at) - 1e-4))
            cos = math.cos(math.radians(at.y))
            dx, dy = (ahead.x - behind.x) * cos, ahead.y - behind.y
            norm = math.hypot(dx, dy)
            if norm > 0:
                out.append((at, -dy / norm, dx / norm))
    return out


def _step(at: Point, normal: tuple[float, float], metres: float) -> tuple[float, float]:
    """(lat, lon) `metres` from `at` along the normal."""
    nx, ny = normal
    lat = at.y + ny * metres / METRES_PER_DEGREE
    lon = at.x + nx * metres / (METRES_PER_DEGREE * math.cos(math.radians(at.y)))
    return lat, lon


def test_points_50_m_either_side_of_each_border_are_placed_as_the_outlines_say(
    outlines: dict[str, BaseGeometry],
) -> None:
    """Along every border two districts share, and the governorates' outer edge, step 50 m
    into each side: the region placed (learning the map's cells, then from the cells
    remembered) is the district whose outline holds the point, or Syria outside both."""
    rules = load_rules(ROOT / "rules")  # its own, so that its cells start unknown
    districts = {rid: outlines[rid] for rid in DISTRICTS}
    for geom in districts.values():
        shapely.prepare(geom)

    def truth(lat: float, lon: float) -> str:
        holding = [rid for rid, g in districts.items() if g.covers(Point(lon, lat))]
        assert len(holding) <= 1, f"districts overlap at {lat}, {lon}: {holding}"
        return holding[0] if holding else "SY"

    borders: list[tuple[str, str, BaseGeometry]] = []
    for n, a in enumerate(DISTRICTS):
        for b in DISTRICTS[n + 1 :]:
            shared = districts[a].boundary.intersection(districts[b].boundary)
            if shared.length > 0:
                borders.append((a, b, shapely.line_merge(shared)))
    outer = shapely.union_all([outlines["SY02"], outlines["SY07"]]).boundary
    borders.append(("SY02|SY07", "SY", outer))
    assert len(borders) == 25, "the 24 borders districts share, and the outer edge"

    points: list[tuple[float, float]] = []
    sides: list[tuple[str, str, str, str]] = []  # (border a, b, one side, other side)
    for a, b, line in borders:
        for at, nx, ny in _border_points(line, every_m=2_000):
            one, other = _step(at, (nx, ny), 50), _step(at, (nx, ny), -50)
            points += [one, other]
            sides.append((a, b, truth(*one), truth(*other)))
    assert len(points) > 1_000

    expected = [truth(lat, lon) for lat, lon in points]
    learnt = [rules.locate(None, lat, lon) for lat, lon in points]
    remembered = [rules.locate(None, lat, lon) for lat, lon in points]
    assert learnt == expected
    assert remembered == expected
    assert rules.locate_many([(None, lat, lon) for lat, lon in points]) == expected

    # The test would notice a wrong side: most steps land on the two sides of their border.
    across = [s for s in sides if s[0] != s[1] and {s[2], s[3]} == {s[0], s[1]}]
    districts_across = [s for s in sides if s[1] != "SY"]
    assert len(across) > 0.9 * len(districts_across)
