"""What one response read: the (family, scope) generations it went through the entity cache for."""

from __future__ import annotations

import contextvars
import math
from collections.abc import Hashable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from app.cache.entities import Dependency, Family


class ReadTracker:
    """Records the (family, scope) generations a request read through `EntityCache.get`.

    Use as a context manager around building one response; tasks created inside it inherit it,
    so a concurrent fan-out records into the same tracker. A nested tracker passes its reads to
    the enclosing one on exit. Nothing is recorded, at no cost beyond one ContextVar read, when
    no tracker is active.
    """

    __slots__ = ("_parent", "_reads", "_token", "expires_at", "failed", "served_stale")

    def __init__(self) -> None:
        self._reads: dict[Dependency, int] = {}
        self.expires_at = math.inf
        self.served_stale = False
        self.failed = False
        self._parent: ReadTracker | None = None
        self._token: contextvars.Token[ReadTracker | None] | None = None

    @staticmethod
    def current() -> ReadTracker | None:
        return active_tracker.get()

    @property
    def dependencies(self) -> Mapping[Dependency, int]:
        """The oldest generation read of each (family, scope)."""
        return self._reads

    @property
    def cacheable(self) -> bool:
        """False when a read was served stale or failed: such a response must not be stored."""
        return not (self.served_stale or self.failed)

    def _record(
        self, family: Family, scope: Hashable | None, generation: int, expires_at: float
    ) -> None:
        dependency = (family, scope)
        seen = self._reads.get(dependency)
        # Keep the oldest: if the data changed between two reads, the response mixes both.
        if seen is None or generation < seen:
            self._reads[dependency] = generation
        if expires_at < self.expires_at:
            self.expires_at = expires_at

    def _merge_into(self, parent: ReadTracker) -> None:
        for (family, scope), generation in self._reads.items():
            parent._record(family, scope, generation, self.expires_at)
        parent.expires_at = min(parent.expires_at, self.expires_at)  # also when nothing was read
        parent.served_stale |= self.served_stale
        parent.failed |= self.failed

    def __enter__(self) -> Self:
        self._parent = active_tracker.get()
        self._token = active_tracker.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            active_tracker.reset(self._token)
            self._token = None
        if self._parent is not None:
            self._merge_into(self._parent)
            self._parent = None


active_tracker: contextvars.ContextVar[ReadTracker | None] = contextvars.ContextVar(
    "maas_gateway_read_tracker", default=None
)
