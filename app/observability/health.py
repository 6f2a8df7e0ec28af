"""Readiness: MAAS answered recently, or the cache can still serve; kept current by a probe."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.core.errors import GatewayError

if TYPE_CHECKING:
    from app.maas.client import MaasClient


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str
    detail: dict[str, Any]


class UpstreamHealth:
    """Remembers when MAAS last answered, as seen by every upstream call and the probe.

    Ready while MAAS answered within `window` seconds, or while the cache holds entries and
    MAAS answered within `servable` seconds (the longest an entry may be served, stale
    included). A slow or failed call changes nothing until the window runs out, so one bad
    call cannot flip readiness; only a sustained outage does.
    """

    def __init__(
        self,
        *,
        window: float,
        servable: float,
        probe_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.servable = max(servable, window)
        self.probe_interval = probe_interval
        self.clock = clock
        self.last_success: float | None = None
        self.last_failure: str | None = None
        self.consecutive_failures = 0
        self.draining = False

    def observe(self, outcome: str) -> None:
        """Take one upstream outcome: an HTTP status or a gateway error code."""
        # Any HTTP answer below 500 (a 404, a 403 too) shows MAAS is up and serving.
        if outcome.isdigit() and int(outcome) < 500:
            self.last_success = self.clock()
            self.consecutive_failures = 0
        else:
            self.last_failure = outcome
            self.consecutive_failures += 1

    def success_age(self) -> float | None:
        return None if self.last_success is None else self.clock() - self.last_success

    def readiness(self, cache_entries: int) -> Readiness:
        age = self.success_age()
        detail: dict[str, Any] = {
            "maas": {
                "last_success_age_s": None if age is None else round(age, 3),
                "consecutive_failures": self.consecutive_failures,
                "last_failure": self.last_failure,
                "window_s": self.window,
            },
            "cache": {"entries": cache_entries, "servable_s": self.servable},
        }
        if self.draining:
            return Readiness(False, "shutting down", detail)
        if age is not None and age < self.window:
            return Readiness(True, "MAAS answered recently", detail)
        if age is not None and cache_entries and age < self.servable:
            return Readiness(True, "MAAS is not answering; the cache still serves", detail)
        if age is None:
            return Readiness(False, "MAAS has not answered yet", detail)
        return Readiness(False, "MAAS has not answered recently", detail)

    async def probe(self, maas: MaasClient) -> None:
        """Ask MAAS for its version whenever no call succeeded for a probe interval, so
        readiness stays current on an idle gateway (version/ needs no credentials)."""
        interval = self.probe_interval
        while True:
            age = self.success_age()
            if age is None or age >= interval:
                # The outcome reaches `observe` through the client's observer.
                with contextlib.suppress(GatewayError, TimeoutError):
                    await asyncio.wait_for(maas.version(), timeout=interval)
            await asyncio.sleep(interval)
