"""Per-principal rate limits and cost budgets: a token bucket for each caller, in this process
or, with Redis, shared by every replica."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class RateLimiter:
    """A token bucket per principal: `rate` requests a second on average, `burst` at once."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_principals: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._max = max_principals
        self._clock = clock
        # principal -> [tokens left, when last refilled]
        self._buckets: dict[str, list[float]] = {}

    def acquire(self, principal: str, amount: float = 1.0) -> float:
        """Take `amount` from the principal's bucket: 0.0 if allowed, else the seconds until
        that much is available (for Retry-After). More than the burst is never allowed."""
        now = self._clock()
        bucket = self._buckets.get(principal)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._prune(now)
            bucket = self._buckets[principal] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= amount:
            bucket[0] = tokens - amount
            return 0.0
        bucket[0] = tokens
        return (amount - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # Full buckets carry no state worth keeping; if every bucket is in use (a flood of
        # distinct principals), start over rather than grow without bound.
        full = [
            p
            for p, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate >= self.burst
        ]
        for principal in full:
            del self._buckets[principal]
        if len(self._buckets) >= self._max:
            self._buckets.clear()


class SharedCounter(Protocol):
    """Buckets every replica draws from (app/cache/redis.py): the seconds to wait, 0.0 when
    allowed, or None when the count could not be made (Redis unreachable)."""

    async def take(self, key: str, amount: float, rate: float, burst: float) -> float | None: ...


class Limit:
    """One kind of limit (requests, or cost): a bucket per principal, drawn from Redis when
    the replicas share one, else this process's own. While Redis cannot count, each replica
    counts alone, so a caller gets at most one limit per replica rather than none."""

    def __init__(
        self, name: str, rate: float, burst: int, shared: SharedCounter | None = None
    ) -> None:
        self.name = name
        self.local = RateLimiter(rate, burst)
        self.shared = shared
        self._alone = False

    @property
    def rate(self) -> float:
        return self.local.rate

    @property
    def burst(self) -> float:
        return self.local.burst

    async def take(self, principal: str, amount: float = 1.0) -> float:
        if self.shared is not None:
            wait = await self.shared.take(
                f"{self.name}:{principal}", amount, self.local.rate, self.local.burst
            )
            if wait is not None:
                self._alone = False
                return wait
            if not self._alone:
                self._alone = True
                log.warning("%s limits: Redis cannot count; this replica counts alone", self.name)
        return self.local.acquire(principal, amount)
