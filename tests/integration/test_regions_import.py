"""Boundary layers become regions: `dispatcher regions import`, and `boundary:` files.

Real files in a scratch copy of the end-to-end rules; the fixtures under testdata/geo have
the fields of an OCHA COD-AB layer and of a geoBoundaries one.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dispatcher.cli import main
from dispatcher.rules.errors import RulesInvalid
from dispatcher.rules.load import check_rules, load_rules

ROOT = Path(__file__).resolve().parents[2]
GEO = ROOT / "tests" / "testdata" / "geo"
COD_AB = GEO / "syr_adm2_idleb_sample.geojson"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "tests" / "testdata" / "rules-e2e", folder)
    return folder


def cod_ab(rules: Path, *more: str) -> int:
    return main(
        [
            "regions",
            "import",
            str(COD_AB),
            "--rules",
            str(rules),
            "--id-field",
            "ADM2_PCODE",
            "--name-field",
            "ADM2_EN",
            "--name-ar-field",
            "ADM2_AR",
            "--alias-field",
            "ADM2_REF",
            "--parent-field",
            "ADM1_PCODE",
            *more,
        ]
    )


def test_a_clash_with_regions_already_there_changes_nothing(
    rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (rules / "regions.yaml").read_text()
    assert cod_ab(rules) == 1
    err = capsys.readouterr().err
    assert "nothing imported" in err
    assert "regions.yaml:" in err
    assert "duplicate region id 'SY0703'" in err
    assert (rules / "regions.yaml").read_text() == before
    assert not (rules / "boundaries").exists()


def test_import_places_points_in_the_layers_outlines(
    rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = load_rules(rules)
    assert cod_ab(rules, "--replace") == 0
    out = capsys.readouterr().out
    assert "imported 3 regions" in out
    assert "replaced SY0703" in out
    assert (
        "SY0702: the source outline crosses itself at (36.65, 35.5); repaired with make_valid, "
        "its area went from 0 to 0.105 square degrees"
    ) in out, "the bowtie's two halves cancelled out; repaired, both count"

    new = load_rules(rules)
    assert new.version != old.version
    assert check_rules(rules) == []
    assert new.region_path("SY0704") == ("SY07", "SY0704")
    assert new.regions["SY0704"].name_ar == "جسر الشغور"
    assert new.locate(None, 35.7, 36.0) == "SY0704", "first part of the MultiPolygon"
    assert new.locate(None, 35.95, 36.3) == "SY0704", "second part of the MultiPolygon"
    assert new.locate(None, 35.85, 36.3) == "SY07", "between the parts: the governorate"
    assert new.locate(None, 35.5, 36.4) == "SY0702", "inside the repaired outline"
    assert new.locate(None, 36.2, 36.5) == "SY0703"
    assert new.resolve_region("Harem") == "SY0703", "the layer's alias field"
    assert new.resolve_region("Jisr al-Shughur") == "SY0704"
    assert "SY0703" not in (rules / "regions.yaml").read_text().split("# imported")[0], (
        "the hand-drawn entry is gone"
    )

    # The outlines are part of the rules' version: an edit to them is a new rule set.
    outlines = rules / "boundaries" / "syr_adm2_idleb_sample.geojson"
    outlines.write_text(outlines.read_text().replace("36.95", "36.9"))
    assert load_rules(rules).version != new.version


def test_geoboundaries_under_one_parent_without_arabic_names(
    rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "regions",
            "import",
            str(GEO / "geoboundaries_adm2_sample.geojson"),
            "--rules",
            str(rules),
            "--id-field",
            "shapeID",
            "--name-field",
            "shapeName",
            "--parent",
            "SY07",
            "--name",
            "ariha",
        ]
    )
    assert code == 0
    assert "SYR-ADM2-0702: no Arabic name" in capsys.readouterr().out
    loaded = load_rules(rules)
    assert loaded.locate(None, 35.75, 36.7) == "SYR-ADM2-0702"
    assert loaded.resolve_region("ariha") == "SYR-ADM2-0702"
    assert (rules / "boundaries" / "ariha.geojson").exists()


def test_an_unusable_layer_is_refused_with_its_fields(
    rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cod_ab(rules, "--id-field", "PCODE") == 1
    err = capsys.readouterr().err
    assert "feature 1 has no 'PCODE'" in err
    assert "ADM2_PCODE" in err, "the message lists the fields the layer has"


@pytest.mark.parametrize(
    ("boundary", "message"),
    [
        ("boundaries/missing.geojson", "cannot read boundary file 'boundaries/missing.geojson'"),
        ("../outside.geojson", "must be a .geojson file inside the rules folder"),
        ("boundaries/bad.geojson", "has no feature with properties.id 'SY0799'"),
        ("boundaries/bowtie.geojson", "is not valid (Self-intersection"),
    ],
)
def test_a_bad_boundary_reference_is_named_where_it_is(
    rules: Path, boundary: str, message: str
) -> None:
    (rules / "boundaries").mkdir()
    (rules / "boundaries" / "bad.geojson").write_text(
        '{"type": "FeatureCollection", "features": []}'
    )
    (rules / "boundaries" / "bowtie.geojson").write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", '
        '"properties": {"id": "SY0799"}, "geometry": {"type": "Polygon", "coordinates": '
        "[[[36.3, 35.35], [37.0, 35.65], [37.0, 35.35], [36.3, 35.65], [36.3, 35.35]]]}}]}"
    )
    with (rules / "regions.yaml").open("a") as f:
        f.write(f"  - {{id: SY0799, name: X, name_ar: س, parent: SY07, boundary: {boundary}}}\n")
    line = len((rules / "regions.yaml").read_text().splitlines())
    with pytest.raises(RulesInvalid) as err:
        load_rules(rules)
    (problem,) = err.value.errors
    assert problem.loc.line == line
    assert message in problem.message


def test_the_shipped_regions_are_the_cod_ab_layer_imported_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command at the top of rules/regions.yaml, run on a copy of the shipped rules,
    gives the shipped outlines byte for byte and the same entries, aliases kept, with the
    three outlines the source draws crossing themselves repaired and named."""
    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    code = main(
        [
            "regions",
            "import",
            str(GEO / "syria-aleppo-idleb-cod-ab.geojson"),
            "--rules",
            str(folder),
            "--id-field",
            "pcode",
            "--name-field",
            "name_en",
            "--name-ar-field",
            "name_ar",
            "--parent-field",
            "parent",
            "--replace",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "imported 15 regions" in out
    repairs = [line.strip() for line in out.splitlines() if "make_valid" in line]
    assert repairs == [
        f"note: {rid}: the source outline crosses itself at ({at}); repaired with make_valid, "
        "its area is unchanged"
        for rid, at in [
            ("SY02", "36.60303, 36.58991"),
            ("SY0203", "36.60348, 36.58999"),
            ("SY0703", "36.44227, 35.91136"),
        ]
    ]
    outlines = "boundaries/syria-aleppo-idleb-cod-ab.geojson"
    assert (folder / outlines).read_bytes() == (ROOT / "rules" / outlines).read_bytes()

    def undated(path: Path) -> list[str]:
        return [re.sub(r" on \d{4}-\d\d-\d\d ", " on DATE ", line) for line in
                path.read_text(encoding="utf-8").splitlines()]  # fmt: skip

    assert undated(folder / "regions.yaml") == undated(ROOT / "rules" / "regions.yaml")
    assert sum("# imported from" in line for line in undated(folder / "regions.yaml")) == 1
