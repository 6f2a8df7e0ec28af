"""Every read and write the gateway makes, shared by REST and GraphQL: cache keys, TTLs,
invalidation and fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Sequence,
)
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from app.cache import (
    CacheOutcome,
    CachePolicy,
    CacheResult,
    EntityCache,
    Family,
    Headers,
    ReadTracker,
    ResponseCache,
    response_key,
)
from app.cache import StoredResponse as StoredResponse  # what stored_response hands the faces
from app.cache.documents import DocumentStore
from app.core.errors import Conflict, PayloadTooLarge, ValidationFailed
from app.core.models import (
    BootResource,
    BootResourceFilter,
    BootSource,
    BootSourceSelection,
    EnsureOutcome,
    ImportStatus,
    SourceOptions,
)
from app.core.settings import Settings
from app.maas import models as maas_models
from app.maas.client import MaasClient
from app.observability.context import note_upload

if TYPE_CHECKING:
    from app.cache.redis import RedisBackend
from app.service.images import DesiredSource, ImagesResult, apply_images
from app.service.payloads import to_boot_resource, to_boot_source, to_selection
from app.service.progress import ImportProgressHub

T = TypeVar("T")


P = ParamSpec("P")


log = logging.getLogger(__name__)


RESOURCE_FAMILIES = (Family.BOOT_RESOURCES, Family.BOOT_RESOURCE)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: `principal` partitions every cache key; `maas` signs as their credential."""

    principal: str
    maas: MaasClient


@dataclass(slots=True)
class ReadLog:
    """What one request's reads came from, for `X-Cache` and GraphQL `extensions`."""

    outcomes: list[CacheOutcome] = field(default_factory=list)
    stale_age: float = 0.0

    @property
    def outcome(self) -> CacheOutcome | None:
        if not self.outcomes:
            return None
        if CacheOutcome.STALE in self.outcomes:
            return CacheOutcome.STALE
        if all(o is CacheOutcome.HIT for o in self.outcomes):
            return CacheOutcome.HIT
        return CacheOutcome.MISS


_read_log: ContextVar[ReadLog | None] = ContextVar("read_log", default=None)


@contextlib.contextmanager
def track_reads() -> Iterator[ReadLog]:
    log = ReadLog()
    token = _read_log.set(log)
    try:
        yield log
    finally:
        _read_log.reset(token)


def cache_policies(settings: Settings) -> dict[Family, CachePolicy]:
    stale = settings.cache_stale_ttl
    return {
        Family.BOOT_RESOURCES: CachePolicy(ttl=settings.cache_ttl_boot_resources, stale_ttl=stale),
        Family.BOOT_RESOURCE: CachePolicy(ttl=settings.cache_ttl_boot_resource, stale_ttl=stale),
        Family.BOOT_SOURCES: CachePolicy(ttl=settings.cache_ttl_boot_sources, stale_ttl=stale),
        Family.BOOT_SOURCE: CachePolicy(ttl=settings.cache_ttl_boot_sources, stale_ttl=stale),
        Family.SELECTIONS: CachePolicy(ttl=settings.cache_ttl_selections, stale_ttl=stale),
        Family.IMPORT_STATUS: CachePolicy(ttl=settings.cache_ttl_import_status, stale_ttl=stale),
    }


def _publishes(
    write: Callable[Concatenate[BootService, P], Awaitable[T]],
) -> Callable[Concatenate[BootService, P], Awaitable[T]]:
    """A write whose invalidations reach the other replicas before it returns (with Redis)."""

    @functools.wraps(write)
    async def publishing(self: BootService, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self.redis is None:
            return await write(self, *args, **kwargs)
        async with self.redis.writing():
            return await write(self, *args, **kwargs)

    return publishing


@dataclass
class _Ensuring:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class BootService:
    """The one place that reads and writes MAAS for both faces, through the shared cache."""

    def __init__(self, cache: EntityCache, settings: Settings) -> None:
        self.cache = cache
        self.responses = (
            ResponseCache(
                cache,
                ttl=settings.response_cache_ttl,
                max_bytes=settings.response_cache_max_bytes,
            )
            if settings.response_cache_ttl > 0
            else None
        )
        self.progress = ImportProgressHub(
            self,
            interval=settings.import_poll_interval,
            max_per_principal=settings.graphql_max_subscriptions_per_principal,
        )
        # Persisted GraphQL documents; shared through Redis when the app configures it.
        self.documents = DocumentStore()
        self._policies = cache_policies(settings)
        self._importing_ttl = settings.cache_ttl_while_importing
        self._importing = False
        self._fanout = settings.fanout_concurrency
        self.max_fanout = settings.max_fanout
        self._ensuring: dict[tuple[str, int, str, str], _Ensuring] = {}
        # Set by the app when Redis is configured: the invalidation bus and shared cache.
        self.redis: RedisBackend | None = None

    def _note(self, result: CacheResult[Any]) -> None:
        log = _read_log.get()
        if log is not None:
            log.outcomes.append(result.outcome)
            if result.outcome is CacheOutcome.STALE:
                log.stale_age = max(log.stale_age, result.age)

    async def _read(
        self,
        caller: Caller,
        family: Family,
        key: object,
        loader: Callable[[], Awaitable[T]],
        scope: object = None,
    ) -> T:
        redis = self.redis
        if redis is not None and redis.shares(family):
            loader = redis.through(caller.principal, family, scope, key, loader)
        result = await self.cache.get(caller.principal, family, key, loader, scope=scope)
        self._note(result)
        return result.value

    # Full responses --------------------------------------------------------------------------

    @staticmethod
    def track_dependencies() -> ReadTracker:
        """Record what building one response reads, so a stored copy misses after a write."""
        return ReadTracker()

    response_key = staticmethod(response_key)

    def stored_response(self, caller: Caller, key: Hashable) -> StoredResponse | None:
        """A stored answer with its headers, while everything it was built from is current."""
        return self.responses.lookup(caller.principal, key) if self.responses else None

    def store_response(
        self,
        caller: Caller,
        key: Hashable,
        body: bytes,
        reads: ReadTracker,
        headers: Headers = (),
    ) -> bool:
        if self.responses is None:
            return False
        return self.responses.set(caller.principal, key, body, reads, headers)

    # Boot resources --------------------------------------------------------------------------

    async def list_boot_resources(
        self, caller: Caller, resource_filter: BootResourceFilter | None = None
    ) -> list[BootResource]:
        wanted = resource_filter or BootResourceFilter()
        type_token = wanted.type.maas_filter if wanted.type is not None else None

        async def load() -> list[BootResource]:
            return [to_boot_resource(r) for r in await caller.maas.list_boot_resources(type_token)]

        resources = await self._read(caller, Family.BOOT_RESOURCES, ("list", type_token), load)
        return [r for r in resources if wanted.matches(r)]

    def cached_boot_resource(self, caller: Caller, resource_id: int) -> BootResource | None:
        """A resource's detail when it is fresh in the cache, without waiting; else None."""
        hit = self.cache.peek(
            caller.principal, Family.BOOT_RESOURCE, resource_id, scope=resource_id
        )
        if hit is None:
            return None
        self._note(hit)
        detail: BootResource = hit.value
        return detail

    async def get_boot_resource(self, caller: Caller, resource_id: int) -> BootResource:
        async def load() -> BootResource:
            return to_boot_resource(await caller.maas.get_boot_resource(resource_id))

        return await self._read(caller, Family.BOOT_RESOURCE, resource_id, load, scope=resource_id)

    async def get_boot_resources(
        self, caller: Caller, resource_ids: Iterable[int]
    ) -> list[BootResource]:
        """Details of many resources, read concurrently under the fan-out bound."""
        ids = list(resource_ids)
        if len(ids) > self.max_fanout:
            raise PayloadTooLarge(
                f"this request needs {len(ids)} boot-resource reads; the limit is "
                f"{self.max_fanout}: narrow it with a filter",
                details={"limit": self.max_fanout, "requested": len(ids)},
            )
        # Fresh details answer at once; only the rest are read, concurrently under the bound.
        details: dict[int, BootResource] = {}
        missing = []
        for resource_id in ids:
            detail = self.cached_boot_resource(caller, resource_id)
            if detail is None:
                missing.append(resource_id)
            else:
                details[resource_id] = detail
        if missing:
            loaded = await asyncio.gather(*self.detail_reads(caller, missing))
            details.update(zip(missing, loaded, strict=True))
        return [details[i] for i in ids]

    async def get_boot_resources_settled(
        self, caller: Caller, resource_ids: Iterable[int]
    ) -> list[BootResource | BaseException]:
        """Like get_boot_resources, but one failed read fails only its own item."""
        return await self.settle(self.detail_reads(caller, resource_ids))

    def detail_reads(
        self, caller: Caller, resource_ids: Iterable[int]
    ) -> list[Awaitable[BootResource]]:
        """Reads of these details, to await together: at most the fan-out bound in flight."""
        bound = asyncio.Semaphore(self._fanout)

        async def one(resource_id: int) -> BootResource:
            async with bound:
                return await self.get_boot_resource(caller, resource_id)

        return [one(i) for i in resource_ids]

    @staticmethod
    async def settle(reads: list[Awaitable[T]]) -> list[T | BaseException]:
        return list(await asyncio.gather(*reads, return_exceptions=True))

    async def list_boot_resources_detailed(
        self, caller: Caller, resource_filter: BootResourceFilter | None = None
    ) -> list[BootResource]:
        shallow = await self.list_boot_resources(caller, resource_filter)
        return await self.get_boot_resources(caller, (r.id for r in shallow))

    @_publishes
    async def delete_boot_resource(self, caller: Caller, resource_id: int) -> None:
        try:
            await caller.maas.delete_boot_resource(resource_id)
        finally:
            self._invalidate_resource(resource_id)

    @_publishes
    async def upload_boot_resource(
        self,
        caller: Caller,
        *,
        name: str,
        architecture: str,
        content: AsyncIterator[bytes],
        size: int,
        sha256: str,
        title: str | None = None,
        filetype: str = "tgz",
        base_image: str | None = None,
    ) -> BootResource:
        if size <= 0:
            raise ValidationFailed("an image must not be empty", fields={"size": ["must be > 0"]})
        try:
            uploaded = await caller.maas.upload_boot_resource(
                name,
                architecture,
                content,
                size,
                sha256,
                title=title,
                filetype=filetype,
                base_image=base_image,
            )
        finally:
            # Whatever happened upstream (a new set, a half-made resource deleted), lists changed.
            self.cache.invalidate(Family.BOOT_RESOURCES)
            self.cache.invalidate(Family.IMPORT_STATUS)
        resource = to_boot_resource(uploaded)
        self.cache.invalidate(Family.BOOT_RESOURCE, scope=resource.id)
        note_upload(size)
        return resource

    # Import ----------------------------------------------------------------------------------

    async def is_importing(self, caller: Caller) -> bool:
        async def load() -> bool:
            return await caller.maas.is_importing()

        importing = await self._read(caller, Family.IMPORT_STATUS, "is_importing", load)
        self._adapt_ttls(importing)
        return importing

    async def import_status(self, caller: Caller) -> ImportStatus:
        importing, resources = await asyncio.gather(
            self.is_importing(caller), self.list_boot_resources_detailed(caller)
        )
        return ImportStatus(
            importing=importing, incomplete=[r for r in resources if r.complete is False]
        )

    @_publishes
    async def start_import(self, caller: Caller) -> bool:
        try:
            await caller.maas.start_import()
        finally:
            self._invalidate_all_resources()
        self._adapt_ttls(True)
        return True

    @_publishes
    async def stop_import(self, caller: Caller) -> bool:
        try:
            await caller.maas.stop_import()
        finally:
            self._invalidate_all_resources()
        return True

    def ttl(self, family: Family) -> float:
        """How long an answer of `family` is fresh now (shorter while an import runs)."""
        policy = self.cache.policy(family)
        ttl = policy.ttl if policy is not None else 0.0
        cap = self.cache.ttl_cap
        return ttl if cap is None else min(ttl, cap)

    def _adapt_ttls(self, importing: bool) -> None:
        if importing == self._importing:
            return
        if self._importing and not importing:
            # Entries read mid-import would turn fresh again under the long TTL; drop them.
            for family in RESOURCE_FAMILIES:
                self.cache.invalidate(family)
        self._importing = importing
        # Progress moves while an import runs, so resource answers age faster
        # (docs/architecture.md, "Caching").
        for family in RESOURCE_FAMILIES:
            policy = self._policies[family]
            if importing:
                policy = CachePolicy(
                    ttl=min(policy.ttl, self._importing_ttl), stale_ttl=policy.stale_ttl
                )
            self.cache.set_policy(family, policy)

    # Boot sources ----------------------------------------------------------------------------

    async def list_boot_sources(self, caller: Caller) -> list[BootSource]:
        async def load() -> list[BootSource]:
            return [to_boot_source(s) for s in await caller.maas.list_boot_sources()]

        return await self._read(caller, Family.BOOT_SOURCES, "list", load)

    async def get_boot_source(self, caller: Caller, source_id: int) -> BootSource:
        async def load() -> BootSource:
            return to_boot_source(await caller.maas.get_boot_source(source_id))

        return await self._read(caller, Family.BOOT_SOURCE, source_id, load, scope=source_id)

    @_publishes
    async def create_boot_source(
        self,
        caller: Caller,
        *,
        url: str,
        keyring_filename: str | None = None,
        keyring_data: bytes | None = None,
        options: SourceOptions | None = None,
    ) -> BootSource:
        await self._require_38(caller, options)
        try:
            created = await caller.maas.create_boot_source(
                url, keyring_filename=keyring_filename, keyring_data=keyring_data, options=options
            )
        finally:
            self.cache.invalidate(Family.BOOT_SOURCES)
        return to_boot_source(created)

    @_publishes
    async def update_boot_source(
        self,
        caller: Caller,
        source_id: int,
        *,
        url: str | None = None,
        keyring_filename: str | None = None,
        keyring_data: bytes | None = None,
        options: SourceOptions | None = None,
    ) -> BootSource:
        await self._require_38(caller, options)
        if keyring_data is None:
            keyring_data = await self._stored_keyring(caller, source_id)
        try:
            updated = await caller.maas.update_boot_source(
                source_id,
                url=url,
                keyring_filename=keyring_filename,
                keyring_data=keyring_data,
                options=options,
            )
        finally:
            self._invalidate_source(source_id)
        return to_boot_source(updated)

    @staticmethod
    async def _stored_keyring(caller: Caller, source_id: int) -> bytes | None:
        """The keyring bytes a source holds, to send again: MAAS answers 500 to an update of a
        source with keyring data that does not upload it anew (maas-api.md §6.3)."""
        stored = (await caller.maas.get_boot_source(source_id)).keyring_bytes()
        return stored or None

    @staticmethod
    async def _require_38(caller: Caller, options: SourceOptions | None) -> None:
        """3.8's own fields on an earlier MAAS would be dropped in silence: refused instead,
        before anything is written (maas-api.md §6.1, §9 item 18)."""
        given = options.given() if options is not None else {}
        if not given:
            return
        version = (await caller.maas.version()).version
        numbers = re.match(r"(\d+)\.(\d+)", version)
        if numbers is None or (int(numbers[1]), int(numbers[2])) >= (3, 8):
            return
        raise ValidationFailed(
            f"{', '.join(given)} need MAAS 3.8 or later; this MAAS is {version}",
            fields={name: [f"needs MAAS 3.8 or later (this MAAS is {version})"] for name in given},
        )

    @_publishes
    async def delete_boot_source(self, caller: Caller, source_id: int) -> None:
        try:
            await caller.maas.delete_boot_source(source_id)
        finally:
            self._invalidate_source(source_id)
            self.cache.invalidate(Family.SELECTIONS, scope=source_id)

    # Selections ------------------------------------------------------------------------------

    async def list_selections(self, caller: Caller, source_id: int) -> list[BootSourceSelection]:
        async def load() -> list[BootSourceSelection]:
            return [
                to_selection(s) for s in await caller.maas.list_boot_source_selections(source_id)
            ]

        return await self._read(caller, Family.SELECTIONS, "list", load, scope=source_id)

    async def get_selection(
        self, caller: Caller, source_id: int, selection_id: int
    ) -> BootSourceSelection:
        async def load() -> BootSourceSelection:
            return to_selection(
                await caller.maas.get_boot_source_selection(source_id, selection_id)
            )

        return await self._read(
            caller, Family.SELECTIONS, ("one", selection_id), load, scope=source_id
        )

    @_publishes
    async def create_selection(
        self,
        caller: Caller,
        source_id: int,
        *,
        os: str,
        release: str,
        arches: list[str] | None = None,
        subarches: list[str] | None = None,
        labels: list[str] | None = None,
    ) -> BootSourceSelection:
        # MAAS stores a list left out as [], and a selection of nothing imports nothing; what
        # clients mean is "all", as python-libmaas sends (maas-api.md §7.2, §8).
        every = ["*"]
        try:
            created = await caller.maas.create_boot_source_selection(
                source_id,
                os=os,
                release=release,
                arches=every if arches is None else arches,
                subarches=every if subarches is None else subarches,
                labels=every if labels is None else labels,
            )
        finally:
            self.cache.invalidate(Family.SELECTIONS, scope=source_id)
        return to_selection(created)

    @_publishes
    async def update_selection(
        self,
        caller: Caller,
        source_id: int,
        selection_id: int,
        *,
        os: str | None = None,
        release: str | None = None,
        arches: list[str] | None = None,
        subarches: list[str] | None = None,
        labels: list[str] | None = None,
    ) -> BootSourceSelection:
        try:
            updated = await caller.maas.update_boot_source_selection(
                source_id,
                selection_id,
                os=os,
                release=release,
                arches=arches,
                subarches=subarches,
                labels=labels,
            )
        finally:
            self.cache.invalidate(Family.SELECTIONS, scope=source_id)
        return to_selection(updated)

    async def apply_images(
        self,
        caller: Caller,
        desired: Sequence[DesiredSource],
        *,
        prune: bool = False,
        dry_run: bool = False,
    ) -> ImagesResult:
        """Plan, and unless `dry_run` carry out, a declared set of sources and selections."""
        return await apply_images(self, caller, desired, prune=prune, dry_run=dry_run)

    async def ensure_selection(
        self,
        caller: Caller,
        source_id: int,
        *,
        os: str,
        release: str,
        arches: list[str] | None = None,
        subarches: list[str] | None = None,
        labels: list[str] | None = None,
    ) -> tuple[BootSourceSelection, EnsureOutcome]:
        """The source's selection of (os, release) with these lists (left out: ["*"]): created,
        updated, or left alone when it already matches (no MAAS write). MAAS's auto-created
        default selection is an ordinary match. Ensures of one key wait for each other here;
        another replica's create shows as MAAS's 409, and the one it made is then ensured."""
        wanted = {
            "arches": ["*"] if arches is None else arches,
            "subarches": ["*"] if subarches is None else subarches,
            "labels": ["*"] if labels is None else labels,
        }
        key = (caller.principal, source_id, os, release)
        # A lock a key and how many wait on it: dropped with its last user, so keys don't pile up.
        entry = self._ensuring.setdefault(key, _Ensuring())
        entry.users += 1
        try:
            async with entry.lock:
                return await self._ensure(caller, source_id, os, release, wanted)
        finally:
            entry.users -= 1
            if not entry.users:
                del self._ensuring[key]

    async def _ensure(
        self, caller: Caller, source_id: int, os: str, release: str, wanted: dict[str, list[str]]
    ) -> tuple[BootSourceSelection, EnsureOutcome]:
        async def current() -> maas_models.BootSourceSelection | None:
            # Read from MAAS, not the cache: what to write depends on it.
            listed = await caller.maas.list_boot_source_selections(source_id)
            return next((s for s in listed if (s.os, s.release) == (os, release)), None)

        found = await current()
        try:
            return await self._converge(caller, source_id, found, os, release, wanted)
        except (Conflict, ValidationFailed):
            if found is not None:
                raise
            # Another replica may have made it meanwhile: MAAS refuses the duplicate
            # (maas-api.md §7.2), and the one it made is then ensured.
            found = await current()
            if found is None:
                raise
            return await self._converge(caller, source_id, found, os, release, wanted)

    async def _converge(
        self,
        caller: Caller,
        source_id: int,
        current: maas_models.BootSourceSelection | None,
        os: str,
        release: str,
        wanted: dict[str, list[str]],
    ) -> tuple[BootSourceSelection, EnsureOutcome]:
        arches, subarches, labels = wanted["arches"], wanted["subarches"], wanted["labels"]
        if current is None:
            created = await self.create_selection(
                caller,
                source_id,
                os=os,
                release=release,
                arches=arches,
                subarches=subarches,
                labels=labels,
            )
            return created, EnsureOutcome.CREATED
        if all(sorted(getattr(current, k) or []) == sorted(v) for k, v in wanted.items()):
            return to_selection(current), EnsureOutcome.UNCHANGED
        updated = await self.update_selection(
            caller, source_id, current.id, arches=arches, subarches=subarches, labels=labels
        )
        return updated, EnsureOutcome.UPDATED

    @_publishes
    async def delete_selection(self, caller: Caller, source_id: int, selection_id: int) -> None:
        try:
            await caller.maas.delete_boot_source_selection(source_id, selection_id)
        finally:
            self.cache.invalidate(Family.SELECTIONS, scope=source_id)

    # Invalidation ----------------------------------------------------------------------------

    def _invalidate_resource(self, resource_id: int) -> None:
        self.cache.invalidate(Family.BOOT_RESOURCES)
        self.cache.invalidate(Family.BOOT_RESOURCE, scope=resource_id)
        self.cache.invalidate(Family.IMPORT_STATUS)

    def _invalidate_all_resources(self) -> None:
        self.cache.invalidate(Family.BOOT_RESOURCES)
        self.cache.invalidate(Family.BOOT_RESOURCE)
        self.cache.invalidate(Family.IMPORT_STATUS)

    def _invalidate_source(self, source_id: int) -> None:
        self.cache.invalidate(Family.BOOT_SOURCES)
        self.cache.invalidate(Family.BOOT_SOURCE, scope=source_id)
