"""Per-request GraphQL context: the caller, the service and the request's data loaders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from app import models
from app.callers import Identity
from app.errors import PayloadTooLarge
from app.service import BootService, Caller


@dataclass
class Loaders:
    """Batch the nested reads of one request; each read is still cached and single-flighted."""

    service: BootService
    caller: Caller
    fanout_used: int = 0
    boot_resource: DataLoader[int, models.BootResource] = field(init=False)
    selections: DataLoader[int, list[models.BootSourceSelection]] = field(init=False)
    boot_source: DataLoader[int, models.BootSource] = field(init=False)

    def __post_init__(self) -> None:
        self.boot_resource = DataLoader(load_fn=self._load_boot_resources)
        self.selections = DataLoader(load_fn=self._load_selections)
        self.boot_source = DataLoader(load_fn=self._load_boot_sources)

    async def prefetch_boot_resources(
        self, resources: Sequence[models.BootResource]
    ) -> list[models.BootResource]:
        """The resources with their details, read at once under the request's fan-out cap; one
        that fails stays shallow, so its nested fields report its own error."""
        service, caller = self.service, self.caller
        at_hand = {
            r.id: service.cached_boot_resource(caller, r.id) for r in resources if r.sets is None
        }
        wanted = [resource_id for resource_id, detail in at_hand.items() if detail is None]
        loaded: dict[int, object] = dict(at_hand)
        if wanted:
            loaded.update(zip(wanted, await self._load_boot_resources(wanted), strict=True))
        detailed = []
        for resource in resources:
            detail = loaded.get(resource.id)
            if isinstance(detail, models.BootResource):
                resource = detail
            detailed.append(resource)
        return detailed

    async def _load_boot_resources(
        self, ids: Sequence[int]
    ) -> Sequence[models.BootResource | BaseException]:
        # The cap counts every detail read of the request, across batches and aliases.
        self.fanout_used += len(ids)
        limit = self.service.max_fanout
        if self.fanout_used > limit:
            error = PayloadTooLarge(
                f"this query needs more than {limit} boot-resource reads; narrow it with a filter",
                details={"limit": limit},
            )
            return [error] * len(ids)
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
        throttle: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.introspection = introspection
        # Websocket operations are rate-limited one by one; HTTP requests at the gate.
        self.throttle = throttle
        self.identity: Identity | None = None
        if identity is not None:
            self.sign_in(identity)

    def sign_in(self, identity: Identity) -> None:
        self.identity = identity
        self.caller = identity.caller
        self.loaders = Loaders(self.service, identity.caller)
