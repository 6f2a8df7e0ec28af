"""Token buckets per principal: rates other than one a second, amounts other than one, and
the bound on how many principals are remembered."""

from __future__ import annotations

import pytest

from app.auth.rate_limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_is_what_the_missing_tokens_take_at_the_configured_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(4.0, 2, clock=clock)
    assert limiter.acquire("p") == limiter.acquire("p") == 0.0
    assert limiter.acquire("p") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.acquire("p") == 0.0


def test_an_amount_takes_that_many_tokens_and_never_more_than_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 10, clock=clock)
    assert limiter.acquire("p", 4) == limiter.acquire("p", 4) == 0.0
    assert limiter.acquire("p", 4) == pytest.approx(1.0)  # 2 missing, at 2 a second
    assert limiter.acquire("q", 10) == 0.0  # principals have buckets of their own
    clock.now += 1.0
    assert limiter.acquire("p", 4) == 0.0


def test_a_flood_of_distinct_principals_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 5, max_principals=100, clock=clock)
    for n in range(100):
        limiter.acquire(f"p{n}")
    clock.now += 0.5  # none is full yet: keeping them all would pass the bound
    limiter.acquire("new")
    assert len(limiter._buckets) == 1


def test_full_buckets_are_forgotten_first_and_partly_used_ones_kept() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 5, max_principals=100, clock=clock)
    for n in range(99):
        limiter.acquire(f"p{n}")
    clock.now += 2  # every one of those is full again
    limiter.acquire("busy", 5)
    limiter.acquire("new")
    assert set(limiter._buckets) == {"busy", "new"}
    assert limiter.acquire("busy") == pytest.approx(1.0)  # still empty: not forgotten


def test_a_rate_of_zero_or_a_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        RateLimiter(0, 1)
    with pytest.raises(ValueError, match="burst >= 1"):
        RateLimiter(1, 0)
