"""The limits on guessing a secret (pairing codes, desk sign-ins, API keys), the secrets that
worked from an address, and whose address a request came from."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.guessing import FailureLimiter, Vouched, client_address, counted_as

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


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


def test_a_success_clears_the_address_but_not_the_overall_count() -> None:
    limiter = FailureLimiter(per_address=3, overall=4)
    for _ in range(3):
        limiter.failed("10.0.0.1", T0)
    assert limiter.retry_after("10.0.0.1", T0) == 600.0
    limiter.succeeded("10.0.0.1")
    assert limiter.retry_after("10.0.0.1", T0) is None, "signed in: a fresh start"
    limiter.failed("10.0.0.1", T0 + MIN)
    assert limiter.retry_after("10.0.0.2", T0 + MIN) == 540.0, "four failures in all"


def test_without_an_overall_cap_guessers_elsewhere_shut_nobody_else_out() -> None:
    limiter = FailureLimiter(per_address=2, overall=None)
    for n in range(1000):
        limiter.failed(f"10.0.{n // 250}.{n % 250}", T0)
    assert limiter.retry_after("192.0.2.7", T0) is None


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next /64: another client
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_client_is_counted_by_its_64(address: str, counted: str) -> None:
    assert counted_as(address) == counted


def test_walking_through_a_64_buys_no_more_tries() -> None:
    limiter = FailureLimiter(per_address=5, overall=None)
    for n in range(5):
        limiter.failed(f"2001:db8:1:2::{n + 1:x}", T0)
    assert limiter.retry_after("2001:db8:1:2::ffff", T0) == 600.0
    assert limiter.retry_after("2001:db8:1:3::1", T0) is None


def test_addresses_whose_failures_aged_out_are_forgotten_and_the_rest_kept() -> None:
    limiter = FailureLimiter(per_address=2, overall=None)
    for n in range(3000):
        limiter.failed(f"10.0.{n // 250}.{n % 250}", T0)
    limiter.failed("192.0.2.7", T0 + 5 * MIN)
    limiter.failed("192.0.2.7", T0 + 9 * MIN)
    limiter.failed("10.0.0.1", T0 + 9 * MIN)
    assert limiter.retry_after("10.0.0.1", T0 + 10 * MIN) is None, "its first failure left"
    assert limiter.retry_after("192.0.2.7", T0 + 10 * MIN) == 300.0
    limiter.failed("10.0.0.1", T0 + 10 * MIN)
    assert limiter.retry_after("10.0.0.1", T0 + 10 * MIN) == 540.0
    assert len(limiter._by_address) == 2, "the 2,999 stale addresses are gone"


def test_a_secret_that_worked_from_an_address_is_remembered_for_a_while() -> None:
    vouched = Vouched(keep=timedelta(hours=24), max_entries=3)
    vouched.worked("2001:db8:1:2::1", "key-a", T0)
    assert vouched.has_worked("2001:db8:1:2::99", "key-a", T0), "the same /64"
    assert not vouched.has_worked("2001:db8:1:3::1", "key-a", T0), "another client"
    assert not vouched.has_worked("2001:db8:1:2::1", "key-b", T0), "another secret"
    vouched.worked("2001:db8:1:2::1", "key-a", T0 + 23 * 60 * MIN)
    assert vouched.has_worked("2001:db8:1:2::1", "key-a", T0 + 46 * 60 * MIN), "kept since"
    assert not vouched.has_worked("2001:db8:1:2::1", "key-a", T0 + 47 * 60 * MIN)


def test_vouched_secrets_beyond_the_size_forget_the_least_recently_used() -> None:
    vouched = Vouched(max_entries=3)
    for n in range(3):
        vouched.worked(f"10.0.0.{n}", "key", T0 + n * MIN)
    vouched.worked("10.0.0.0", "key", T0 + 3 * MIN)  # used again: now the most recent
    vouched.worked("10.0.0.9", "key", T0 + 4 * MIN)
    now = T0 + 5 * MIN
    assert [vouched.has_worked(f"10.0.0.{n}", "key", now) for n in (0, 1, 2, 9)] == [
        True, False, True, True,
    ]  # fmt: skip
