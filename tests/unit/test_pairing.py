"""Pairing codes, the limiter on guessing them, and whose address a request came from."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.pairing import (
    ALPHABET,
    FailureLimiter,
    client_address,
    digest,
    new_code,
    normal,
    shown,
)

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


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


def test_five_failures_shut_an_address_out_for_what_is_left_of_ten_minutes() -> None:
    limiter = FailureLimiter()
    for n in range(5):
        assert limiter.retry_after("10.0.0.1", T0 + n * MIN) is None
        limiter.failed("10.0.0.1", T0 + n * MIN)
    assert limiter.retry_after("10.0.0.1", T0 + 5 * MIN) == 300.0  # first failure + 10 min
    assert limiter.retry_after("10.0.0.2", T0 + 5 * MIN) is None, "others may still try"
    assert limiter.retry_after("10.0.0.1", T0 + 10 * MIN) is None, "the oldest has left"
    limiter.failed("10.0.0.1", T0 + 10 * MIN)
    assert limiter.retry_after("10.0.0.1", T0 + 10 * MIN) == 60.0


def test_a_global_cap_holds_against_guessers_on_many_addresses() -> None:
    limiter = FailureLimiter(per_address=5, overall=60)
    for n in range(60):
        limiter.failed(f"10.0.{n}.1", T0)
    assert limiter.retry_after("192.0.2.7", T0 + MIN) == 540.0
    assert limiter.retry_after("192.0.2.7", T0 + 10 * MIN) is None


def test_the_limiter_forgets_the_oldest_addresses_beyond_its_size() -> None:
    limiter = FailureLimiter(per_address=1, max_addresses=3)
    for n in range(5):
        limiter.failed(f"a{n}", T0)
    assert limiter.retry_after("a0", T0) is None
    assert limiter.retry_after("a4", T0) == 600.0


PROXY = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.1.0.0/16")]


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "client"),
    [
        ("203.0.113.9", [], PROXY, "203.0.113.9"),
        # Not from a trusted proxy: the header is the client's own word, ignored.
        ("203.0.113.9", ["198.51.100.1"], PROXY, "203.0.113.9"),
        ("127.0.0.1", ["198.51.100.1"], [], "127.0.0.1"),
        # From the proxy: the last hop it did not add itself.
        ("127.0.0.1", ["198.51.100.1"], PROXY, "198.51.100.1"),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], PROXY, "198.51.100.1"),
        ("127.0.0.1", ["6.6.6.6", "198.51.100.1, 10.1.2.3"], PROXY, "198.51.100.1"),
        ("127.0.0.1", [], PROXY, "127.0.0.1"),
        (None, [], PROXY, "unknown"),
    ],
)
def test_the_client_address_behind_a_trusted_proxy(
    remote: str | None,
    forwarded: list[str],
    trusted: list[ipaddress.IPv4Network],
    client: str,
) -> None:
    assert client_address(remote, forwarded, trusted) == client
