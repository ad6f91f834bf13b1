"""Retries back off exponentially, with jitter, and honour Retry-After."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from dispatcher.notify.outbox import backoff

BASE = timedelta(seconds=2)
CAP = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(1, 1, 2), (2, 2, 4), (3, 4, 8), (9, 150, 300)]
)
def test_delay_grows_and_is_capped(attempt: int, low: float, high: float) -> None:
    rand = random.Random(attempt)
    delays = [backoff(attempt, base=BASE, cap=CAP, rand=rand).total_seconds() for _ in range(50)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1, "jitter spreads retries of many devices apart"


def test_retry_after_is_a_floor() -> None:
    delay = backoff(1, base=BASE, cap=CAP, retry_after=30.0, rand=random.Random(0))
    assert delay == timedelta(seconds=30)


def test_equal_jitter_never_retries_sooner_than_half_the_ceiling() -> None:
    # Full jitter would allow a delay near 0; equal jitter keeps half the ceiling.
    lowest = min(
        backoff(4, base=BASE, cap=CAP, rand=random.Random(seed)).total_seconds()
        for seed in range(500)
    )
    assert 8.0 <= lowest < 8.2
