"""Import progress for subscribers: one poller per principal, whatever the number of subscribers;
with Redis, one per principal across every replica (docs/architecture.md, "Import progress")."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

from app.cache import StoredResponse as StoredResponse  # what stored_response hands the faces
from app.core.errors import GatewayError, ImportStalled, RateLimited
from app.core.models import (
    BootResourceFilter,
    BootResourceType,
    ImageSelector,
    ImportProgress,
    Readiness,
    ResourceProgress,
)

if TYPE_CHECKING:
    from app.service.boot import BootService, Caller

log = logging.getLogger(__name__)


class ImportProgressHub:
    """One poller per principal serves every subscriber; it polls only while someone listens
    and pushes a snapshot only when it differs from the last one."""

    def __init__(
        self, service: BootService, *, interval: float, max_per_principal: int = 1000
    ) -> None:
        self._service = service
        self._interval = interval
        self._max_per_principal = max_per_principal
        self._pollers: dict[str, _Poller] = {}
        self._closed = False
        self._emptied: asyncio.Event | None = None

    @property
    def pollers(self) -> int:
        return len(self._pollers)

    @property
    def subscribers(self) -> int:
        return sum(poller.subscribers for poller in self._pollers.values())

    async def close(self) -> None:
        """End every subscription and refuse new ones (a graceful shutdown's first step): each
        subscriber's stream finishes normally, so its client gets `complete`, not a dropped
        socket. Returns once every subscriber has left; callers bound the wait."""
        self._closed = True
        for poller in list(self._pollers.values()):
            poller.end()
        if self._pollers:
            self._emptied = asyncio.Event()
            await self._emptied.wait()

    async def snapshot(self, caller: Caller) -> ImportProgress:
        service = self._service
        importing, resources = await asyncio.gather(
            service.is_importing(caller),
            service.list_boot_resources_detailed(
                caller, BootResourceFilter(type=BootResourceType.SYNCED)
            ),
        )
        return ImportProgress(
            importing=importing,
            resources=[
                ResourceProgress(
                    id=r.id,
                    name=r.name,
                    architecture=str(r.architecture),
                    version=latest.version if latest else None,
                    complete=latest.complete if latest else False,
                    progress=latest.progress if latest else 0.0,
                )
                for r in resources
                for latest in (r.latest_set,)
            ],
        )

    def check_room(self, caller: Caller) -> None:
        """Raise RateLimited when the caller already holds its cap of subscriptions."""
        poller = self._pollers.get(caller.principal)
        if poller is not None and poller.subscribers >= self._max_per_principal:
            raise RateLimited(
                f"at most {self._max_per_principal} subscriptions at once for one caller",
                details={"limit": self._max_per_principal},
            )

    async def until_ready(
        self, caller: Caller, selector: ImageSelector, *, stall: float | None
    ) -> AsyncIterator[Readiness]:
        """The selector's images as they progress, until all are complete (the last one
        yielded is ready). Raises ImportStalled when nothing changed for `stall` seconds."""
        snapshots = self.subscribe(caller)
        last: Readiness | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(stall):
                        snapshot = await anext(snapshots)
                except StopAsyncIteration:
                    return  # the gateway is shutting down
                except TimeoutError:
                    raise _stalled(stall or 0.0, last) from None
                last = selector.readiness(snapshot)
                yield last
                if last.ready:
                    return
        finally:
            await snapshots.aclose()

    async def subscribe(self, caller: Caller) -> AsyncGenerator[ImportProgress, None]:
        if self._closed:
            return
        self.check_room(caller)
        poller = self._pollers.get(caller.principal)
        if poller is None:
            poller = self._pollers[caller.principal] = _Poller(self, caller)
        queue = poller.add()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if poller.remove(queue):
                self._pollers.pop(caller.principal, None)
                if not self._pollers and self._emptied is not None:
                    self._emptied.set()


# What a subscriber's queue carries: a snapshot, the error that ended polling, or None (the end).
_Item = ImportProgress | BaseException | None


class _Poller:
    def __init__(self, hub: ImportProgressHub, caller: Caller) -> None:
        self._hub = hub
        self._caller = caller
        self._queues: set[asyncio.Queue[_Item]] = set()
        self._last: ImportProgress | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def add(self) -> asyncio.Queue[_Item]:
        queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=16)
        self._queues.add(queue)
        if self._last is not None:
            queue.put_nowait(self._last)
        if self._task is None:
            # A context of its own: the poller outlives the subscription that started it, and
            # must not keep appending to that request's read log or carry its request id.
            self._task = asyncio.create_task(
                self._run(), name="import-progress-poller", context=contextvars.Context()
            )
        return queue

    def end(self) -> None:
        """Stop polling and tell every subscriber the stream is over."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._push(None)

    def remove(self, queue: asyncio.Queue[_Item]) -> bool:
        """Drop a subscriber; stop polling and return True when none is left."""
        self._queues.discard(queue)
        if self._queues:
            return False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        return True

    def _push(self, item: _Item) -> None:
        for queue in self._queues:
            if queue.full():
                # A slow subscriber only needs the newest state, not every step.
                queue.get_nowait()
            queue.put_nowait(item)

    async def _run(self) -> None:
        redis = self._hub._service.redis
        if redis is None:
            while True:
                if not await self._poll():
                    return
                await asyncio.sleep(self._hub._interval)
        # With Redis, one replica polls for the principal while it holds the lease; the others
        # follow what it announces and try for the lease four times an interval, so a dead
        # leader's lease (1.5 intervals) is taken within two. The leader renews it four times
        # an interval too, so only a poll longer than 1.25 intervals lets it lapse.
        interval = self._hub._interval
        lease = 1.5 * interval
        topic = redis.topic(self._caller.principal)
        stop = redis.follow(topic, self._heard)
        leading = False
        try:
            while True:
                leading = await redis.lead(topic, lease=lease)
                if not leading:
                    await asyncio.sleep(interval / 4)
                    continue
                if not await self._poll():
                    return
                if self._last is not None:
                    await redis.announce(topic, self._last)
                for _ in range(3):
                    await asyncio.sleep(interval / 4)
                    leading = await redis.lead(topic, lease=lease)
                await asyncio.sleep(interval / 4)
        finally:
            stop()
            if leading:
                redis.resign(topic)

    async def _poll(self) -> bool:
        """One poll; False when polling ends (it failed before anything could be shown)."""
        try:
            snapshot = await self._hub.snapshot(self._caller)
        except GatewayError as error:
            if self._last is None:
                # Nothing to show yet: tell the subscribers, and let a new one start afresh.
                self._push(error)
                self._task = None
                return False
            log.warning("import progress poll failed: %s", error.code)
        else:
            self._heard(snapshot)
        return True

    def _heard(self, snapshot: ImportProgress) -> None:
        if snapshot != self._last:
            self._last = snapshot
            self._push(snapshot)


def _stalled(seconds: float, last: Readiness | None) -> ImportStalled:
    waiting = [
        r.name + " " + r.architecture for r in (last.resources if last else []) if not r.complete
    ]
    if last is not None and not last.importing:
        reason = "MAAS is not importing"
    elif last is not None and not last.resources:
        reason = "no image matches yet"
    else:
        reason = "MAAS is importing but reported no change"
    return ImportStalled(
        f"no progress for {seconds:g} s: {reason}",
        details={"incomplete": waiting, "importing": last.importing if last else None},
    )
