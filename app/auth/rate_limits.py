"""Per-principal rate limits: a token bucket for each caller."""

from __future__ import annotations

import time
from collections.abc import Callable


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

    def acquire(self, principal: str) -> float:
        """Take one request from the principal's bucket: 0.0 if allowed, else the seconds
        until one is available (for Retry-After)."""
        now = self._clock()
        bucket = self._buckets.get(principal)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._prune(now)
            self._buckets[principal] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

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
