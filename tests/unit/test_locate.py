"""Where a report lands: the deepest region holding its point, or the region it names."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import shapely

from dispatcher.locate import GRID, RegionIndex
from dispatcher.model import UNASSIGNED
from dispatcher.rules.load import RuleSet, load_rules

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(ROOT / "rules")


@pytest.mark.parametrize(
    ("lat", "lon", "region", "place"),
    [
        (35.93, 36.63, "SY0700", "Idleb city"),
        (36.21, 36.52, "SY0703", "Harim town"),
        (35.81, 36.32, "SY0704", "Jisr al-Shughur"),
        (35.65, 36.68, "SY0702", "Maarat al-Numan"),
        (36.20, 37.16, "SY0200", "Aleppo city"),
        (36.51, 36.87, "SY0203", "Afrin"),
        (36.20, 36.16, "SY", "Antakya, Turkey: outside both governorates, in Syria's box"),
        (33.51, 36.29, "SY", "Damascus: in Syria, in no governorate drawn here"),
        (48.85, 2.35, UNASSIGNED, "Paris"),
    ],
)
def test_points(shipped: RuleSet, lat: float, lon: float, region: str, place: str) -> None:
    assert shipped.locate(None, lat, lon) == region, place


@pytest.mark.parametrize(
    ("given", "lat", "lon", "region", "why"),
    [
        ("SY0703", None, None, "SY0703", "a region code alone"),
        ("SY07", 36.21, 36.52, "SY0703", "coordinates refine the governorate to its district"),
        ("SY02", 36.21, 36.52, "SY02", "coordinates elsewhere do not override the code"),
        ("SY0703", 48.85, 2.35, "SY0703", "coordinates off the map"),
    ],
)
def test_codes_and_points(
    shipped: RuleSet, given: str, lat: float | None, lon: float | None, region: str, why: str
) -> None:
    assert shipped.locate(given, lat, lon) == region, why


def test_region_paths_run_from_the_top(shipped: RuleSet) -> None:
    assert shipped.region_path("SY0703") == ("SY", "SY07", "SY0703")
    assert shipped.region_path(UNASSIGNED) == ()
    assert shipped.region_name("SY0703", "ar") == "حارم"
    assert shipped.region_name(UNASSIGNED, "en") == "Unassigned area"


@pytest.mark.parametrize(
    ("given", "region"),
    [
        ("SY0703", "SY0703"),
        ("Harim", "SY0703"),
        ("harem", "SY0703"),
        ("حارم", "SY0703"),
        ("Idlib", "SY07"),  # the governorate, not Idleb district (deeper, same name)
        ("إدلب", "SY07"),
        ("ادلب", "SY07"),  # written without the hamza
        ("  IDLEB ", "SY07"),
        ("Maarat al-Numan", "SY0702"),
        ("Ma’arrat an-Nu’man", "SY0702"),
        ("Azaz", "SY0204"),
        ("Atlantis", []),
    ],
)
def test_names_and_aliases_resolve_to_an_id(
    shipped: RuleSet, given: str, region: str | list[str]
) -> None:
    assert shipped.resolve_region(given) == region


def test_a_name_two_regions_share_at_one_level_is_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "regions.yaml").write_text(
        "regions:\n"
        "  - {id: A, name: Top, name_ar: ق}\n"
        "  - {id: A1, name: Al Bab, name_ar: الباب, parent: A}\n"
        "  - {id: A2, name: Bab, name_ar: باب, aliases: [Al Bab], parent: A}\n"
    )
    (tmp_path / "teams.yaml").write_text("teams: [{id: t, name: T, leaders: [{id: l, name: L}]}]\n")
    (tmp_path / "routes.yaml").write_text("route: {receiver: t}\n")
    rules = load_rules(tmp_path)
    assert rules.resolve_region("al bab") == ["A1", "A2"]
    assert rules.resolve_region("Bab") == "A2"
    (warning,) = rules.warnings
    assert warning.loc.line == 4
    assert "'al bab' belongs to regions A1, A2" in warning.message


def test_a_batch_is_placed_as_each_report_would_be(shipped: RuleSet) -> None:
    wanted: list[tuple[str | None, float | None, float | None]] = [
        (None, 36.21, 36.52),
        ("SY07", 36.21, 36.52),
        ("SY02", 36.21, 36.52),
        ("SY0703", None, None),
        (None, 48.85, 2.35),
        (None, None, None),
        ("SY0703", 48.85, 2.35),
    ]
    assert shipped.locate_many(wanted) == [shipped.locate(*w) for w in wanted]
    assert shipped.locate_many(wanted)[:3] == ["SY0703", "SY0703", "SY02"]
    assert shipped.locate_many([]) == []


def test_both_ways_of_placing_agree_on_the_map_and_on_its_edges(shipped: RuleSet) -> None:
    """A dozen polygons are all tested at once; thousands go through an STRtree first.
    Both give every point the same region, edges and corners included."""
    polygons = shipped.index.outlines()
    depth = {rid: len(shipped.region_path(rid)) for rid in polygons}
    at_once, narrowed = RegionIndex(polygons, depth), RegionIndex(polygons, depth, small=0)
    rng = random.Random(3)
    points = [(rng.uniform(32, 37.5), rng.uniform(35.5, 42.5)) for _ in range(3000)]
    for geom in polygons.values():
        points += [(lat, lon) for lon, lat in shapely.get_coordinates(geom)[:50].tolist()]
    assert at_once.place_many(points) == narrowed.place_many(points)
    assert [at_once.place(lat, lon) for lat, lon in points[:300]] == narrowed.place_many(
        points[:300]
    )
    assert len(set(at_once.place_many(points))) > 5, "the points fall in many regions"


def test_remembered_grid_cells_place_every_point_as_the_polygons_do(shipped: RuleSet) -> None:
    """Cells wholly inside or outside every region answer from memory; the answers are
    those of testing each point against the polygons, on borders, vertices and the
    corners of the cells themselves."""
    polygons = shipped.index.outlines()
    depth = {rid: len(shipped.region_path(rid)) for rid in polygons}
    rng = random.Random(5)
    points = [(rng.uniform(35, 37), rng.uniform(36, 38)) for _ in range(4000)]
    points += [(i / GRID, j / GRID) for i in range(3550, 3600, 7) for j in range(3640, 3700, 7)]
    for geom in polygons.values():
        points += [(lat, lon) for lon, lat in shapely.get_coordinates(geom)[:80].tolist()]
    for index in (RegionIndex(polygons, depth), RegionIndex(polygons, depth, small=0)):
        exact = index.place_exactly(points)
        assert index.place_many(points) == exact, "a batch, learning cells as it goes"
        assert index.place_many(points) == exact, "a batch, from remembered cells"
        assert [index.place(lat, lon) for lat, lon in points] == exact
        cells, borders = index.remembered()
        assert cells > 1000, "most cells are remembered"
        assert borders > 50, "borders are tested"
