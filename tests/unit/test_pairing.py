"""Pairing codes: unambiguous symbols, their typed and stored forms, only a digest kept."""

from __future__ import annotations

import re

import pytest

from dispatcher.pairing import ALPHABET, digest, new_code, normal, shown


def test_codes_are_eight_unambiguous_symbols() -> None:
    assert len(ALPHABET) == 30
    assert not set("01OILU") & set(ALPHABET)
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(re.fullmatch(f"[{ALPHABET}]{{8}}", c) for c in codes)
    assert set("".join(codes)) == set(ALPHABET), "every symbol is used"
    assert shown("ABCD2345") == "ABCD-2345"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("ABCD-2345", "ABCD2345"),
        ("abcd 2345", "ABCD2345"),
        (" ab-cd-23-45 ", "ABCD2345"),
        ("ABCD234", None),  # too short
        ("ABCD23456", None),
        ("ABCD-234O", None),  # O is not a symbol
        ("ABCD-2341", None),
        ("ABCD/2345", None),
    ],
)
def test_a_typed_code_in_its_stored_form(typed: str, stored: str | None) -> None:
    assert normal(typed) == stored


def test_only_a_digest_of_a_code_is_kept() -> None:
    assert digest("ABCD2345") == digest("ABCD2345")
    assert digest("ABCD2345") != digest("ABCD2346")
    assert "ABCD2345" not in digest("ABCD2345")
