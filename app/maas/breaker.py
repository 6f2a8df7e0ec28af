"""Circuit breakers per MAAS endpoint family: fail fast while MAAS is down, probe, recover."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.core.errors import GatewayError, UpstreamUnavailable

FAMILIES = ("boot-resources", "boot-sources", "selections", "import", "upload")
"""Endpoint families, each with a breaker of its own: upload chunk PUTs have theirs, so a slow or
failing upload neither trips nor probes the breaker that guards ordinary reads."""
UNGUARDED = "discovery"
"""version/ and describe/: the readiness probe's own calls, which must see MAAS come back at
once rather than a cooldown later, so no breaker stands in front of them."""


def family_of(operation: str) -> str:
    """The family of a client operation name ("boot-source-selection read" → "selections")."""
    noun, _, verb = operation.partition(" ")
    if noun.startswith("boot-source-selection"):
        return "selections"
    if noun.startswith("boot-source"):
        return "boot-sources"
    if verb == "upload":
        return "upload"
    if verb in ("import", "stop_import", "is_importing"):
        return "import"
    if noun.startswith("boot-resource"):
        return "boot-resources"
    return UNGUARDED


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What the metrics collector reads: the state now and how often the breaker opened."""

    state: State
    opens: int


class Breaker:
    """One family's breaker. Closed: calls go through and consecutive failures are counted;
    at `threshold` it opens. Open: calls fail fast with UpstreamUnavailable (Retry-After is
    the time left) until `cooldown` has passed. Half-open: one call probes MAAS while the
    others still fail fast; its success closes the breaker, its failure opens it again.
    Single-threaded asyncio: no locks."""

    def __init__(
        self,
        family: str,
        threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or cooldown <= 0:
            raise ValueError("threshold must be >= 1 and cooldown > 0")
        self.family = family
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.opens = 0

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self._cooldown:
            return State.HALF_OPEN
        return self._state

    def acquire(self) -> bool:
        """Allow one call or raise UpstreamUnavailable; True when the call is the probe, which
        must then end in `succeeded`, `failed` or `abandoned`."""
        state = self.state
        if state is State.CLOSED:
            return False
        if state is State.HALF_OPEN and not self._probing:
            self._state = State.HALF_OPEN
            self._probing = True
            return True
        left = max(self._opened_at + self._cooldown - self._clock(), 0.0)
        # A probe in flight: the others wait no longer than one more cooldown to retry.
        raise UpstreamUnavailable(
            f"MAAS {self.family} calls are failing; not retried for {left:.1f} s",
            retry_after=left if left > 0 else self._cooldown,
        )

    def succeeded(self, probe: bool) -> None:
        self._failures = 0
        if probe or self._state is not State.CLOSED:
            self._probing = False
            self._state = State.CLOSED

    def failed(self, probe: bool) -> None:
        if probe:
            self._probing = False
            self._open()
            return
        if self._state is not State.CLOSED:
            return  # a call let through before the breaker opened; it is open already
        self._failures += 1
        if self._failures >= self._threshold:
            self._open()

    def abandoned(self, probe: bool) -> None:
        """The call was cancelled before MAAS answered: it says nothing about MAAS."""
        if probe:
            self._probing = False

    def _open(self) -> None:
        # The failure count starts again when it closes (succeeded), not here.
        self._state = State.OPEN
        self._opened_at = self._clock()
        self.opens += 1

    def snapshot(self) -> BreakerState:
        return BreakerState(self.state, self.opens)


class Breakers:
    """One breaker per endpoint family, shared by every view of one client's pool."""

    def __init__(
        self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._breakers = {f: Breaker(f, threshold, cooldown, clock) for f in FAMILIES}

    @contextmanager
    def guard(self, operation: str) -> Iterator[None]:
        """Run one call (its retries included) through its family's breaker: fail fast while
        it is open, and count how the call ended."""
        family = family_of(operation)
        if family == UNGUARDED:
            yield
            return
        breaker = self._breakers[family]
        probe = breaker.acquire()
        try:
            yield
        except GatewayError as exc:
            # Only MAAS being down or broken counts: a 4xx is MAAS answering properly.
            if exc.status >= 500 and exc.details.get("upstream_status", 500) >= 500:
                breaker.failed(probe)
            else:
                breaker.succeeded(probe)
            raise
        except BaseException:
            breaker.abandoned(probe)
            raise
        breaker.succeeded(probe)

    def snapshot(self) -> dict[str, BreakerState]:
        return {family: b.snapshot() for family, b in self._breakers.items()}
