"""Per-request GraphQL context: the caller, the service and the request's data loaders."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from app.auth.identity import Identity
from app.core import models
from app.core.errors import PayloadTooLarge
from app.service import BootService, Caller


@dataclass
class Loaders:
    """Batch the nested reads of one request; each read is still cached and single-flighted."""

    service: BootService
    caller: Caller
    fanout_used: int = 0
    first_payload: asyncio.Event | None = None
    """Set by the HTTP view once an incremental answer's first payload is written (or the
    answer ends without one): deferred detail reads wait for it, so the list goes first."""
    boot_resource: DataLoader[int, models.BootResource] = field(init=False)
    selections: DataLoader[int, list[models.BootSourceSelection]] = field(init=False)
    boot_source: DataLoader[int, models.BootSource] = field(init=False)

    _waiting: set[asyncio.Task[None]] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.boot_resource = DataLoader(load_fn=self._load_boot_resources)
        self.selections = DataLoader(load_fn=self._load_selections)
        self.boot_source = DataLoader(load_fn=self._load_boot_sources)

    async def prefetch_boot_resources(
        self, resources: Sequence[models.BootResource], *, settle: bool = True
    ) -> list[models.BootResource]:
        """The resources, their details read at once under the request's fan-out cap: those at
        hand come back detailed; the rest come back as they are, their reads already sent, and
        each one's nested fields complete as its own detail arrives, while the others are still
        on their way (rather than all of them after the last one). Without `settle` the reads
        are not sent before the list is returned (the detail fields are deferred)."""
        service, caller = self.service, self.caller
        detailed: list[models.BootResource] = []
        wanted: list[int] = []
        for resource in resources:
            if resource.sets is None:
                detail = service.cached_boot_resource(caller, resource.id)
                if detail is None:
                    wanted.append(resource.id)
                else:
                    resource = detail
            detailed.append(resource)
        if wanted:
            if not settle:
                # Only deferred fields need them: sent after the list, not before it.
                self._start_boot_resource_reads(wanted, after=self.first_payload)
                return detailed
            self._start_boot_resource_reads(wanted)
            # Two turns of the loop, so every read is on the wire before the list completes
            # around them: one for each read to start its single-flight load (a task of its
            # own, app/cache/entities.py), one for the loads to send.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        return detailed

    def _start_boot_resource_reads(
        self, ids: Sequence[int], *, after: asyncio.Event | None = None
    ) -> None:
        """Start these detail reads now (or once `after` is set); `boot_resource.load(id)` then
        awaits the one in flight (a failed read fails only its own resource's fields)."""
        self.fanout_used += len(ids)
        limit = self.service.max_fanout
        loop = asyncio.get_running_loop()
        reads: list[asyncio.Future[models.BootResource]]
        if self.fanout_used > limit:
            error = _fanout_exceeded(limit)
            reads = [loop.create_future() for _ in ids]
            for read in reads:
                read.set_exception(error)
        elif after is not None:
            reads = [loop.create_future() for _ in ids]
            task = asyncio.create_task(self._reads_after(after, ids, reads))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)
        else:
            reads = [asyncio.ensure_future(r) for r in self.service.detail_reads(self.caller, ids)]
        for resource_id, read in zip(ids, reads, strict=True):
            # Fields that never ran (an error elsewhere nulled the list) leave it unretrieved.
            read.add_done_callback(_retrieve)
            self.boot_resource.cache_map.set(resource_id, read)

    async def _reads_after(
        self,
        after: asyncio.Event,
        ids: Sequence[int],
        placeholders: Sequence[asyncio.Future[models.BootResource]],
    ) -> None:
        await after.wait()
        for read, placeholder in zip(
            self.service.detail_reads(self.caller, ids), placeholders, strict=True
        ):
            asyncio.ensure_future(read).add_done_callback(functools.partial(_settle, placeholder))

    async def _load_boot_resources(
        self, ids: Sequence[int]
    ) -> Sequence[models.BootResource | BaseException]:
        # The cap counts every detail read of the request, across batches and aliases.
        self.fanout_used += len(ids)
        limit = self.service.max_fanout
        if self.fanout_used > limit:
            return [_fanout_exceeded(limit)] * len(ids)
        return await self.service.get_boot_resources_settled(self.caller, ids)

    async def _load_selections(
        self, source_ids: Sequence[int]
    ) -> Sequence[list[models.BootSourceSelection] | BaseException]:
        return await self.service.settle(
            [self.service.list_selections(self.caller, i) for i in source_ids]
        )

    async def _load_boot_sources(
        self, source_ids: Sequence[int]
    ) -> Sequence[models.BootSource | BaseException]:
        return await self.service.settle(
            [self.service.get_boot_source(self.caller, i) for i in source_ids]
        )


class GraphQLContext(BaseContext):
    """`identity` is None until the caller is known: an HTTP request without a valid
    credential, or a websocket before its `connection_init` (app/graphql/authorization.py
    refuses to execute anything then)."""

    caller: Caller
    loaders: Loaders

    def __init__(
        self,
        service: BootService,
        identity: Identity | None,
        *,
        introspection: bool = True,
        throttle: Callable[[], Awaitable[None]] | None = None,
        spend: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.introspection = introspection
        # Websocket operations are rate-limited one by one; HTTP requests at admission.
        self.throttle = throttle
        # Counts an operation's estimated cost against the caller's budget, if there is one.
        self.spend = spend
        self.identity: Identity | None = None
        if identity is not None:
            self.sign_in(identity)

    def sign_in(self, identity: Identity) -> None:
        self.identity = identity
        self.caller = identity.caller
        self.loaders = Loaders(self.service, identity.caller)


def _fanout_exceeded(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"this query needs more than {limit} boot-resource reads; narrow it with a filter",
        details={"limit": limit},
    )


def _settle(
    placeholder: asyncio.Future[models.BootResource], read: asyncio.Future[models.BootResource]
) -> None:
    if placeholder.done():
        return
    if read.cancelled():
        placeholder.cancel()
    elif (error := read.exception()) is not None:
        placeholder.set_exception(error)
    else:
        placeholder.set_result(read.result())


def _retrieve(read: asyncio.Future[models.BootResource]) -> None:
    if not read.cancelled():
        read.exception()
