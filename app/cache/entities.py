"""Credential-partitioned async entity cache: single-flight, stale-if-error, exact invalidation."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from app.cache.reads import active_tracker
from app.core.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable

T = TypeVar("T")


Dependency = tuple["Family", Hashable | None]
"""What a response read: a family and a scope within it (None: the family's unscoped entries)."""


# A full key: (principal, family, scope, key). The principal always comes first so that two
# credentials can never share an entry or an in-flight load (docs/architecture.md, "Caching").
_Key = tuple[str, "Family", Hashable | None, Hashable]


# Above this many scoped generations in one family, they are folded into one family-wide
# invalidation, so writes to ever-new ids cannot grow the table without bound.
_MAX_SCOPE_GENERATIONS = 100_000


# The default size estimator measures this many items of a large container and extrapolates.
_SIZE_SAMPLE = 16


_SIZE_MAX_DEPTH = 8


class Family(StrEnum):
    """Cache families, in MAAS's words; a write invalidates by family (and scope)."""

    BOOT_RESOURCES = "boot-resources"
    BOOT_RESOURCE = "boot-resource"
    BOOT_SOURCES = "boot-sources"
    BOOT_SOURCE = "boot-source"
    SELECTIONS = "selections"
    IMPORT_STATUS = "import-status"


class CacheOutcome(StrEnum):
    HIT = "HIT"
    MISS = "MISS"
    STALE = "STALE"
    COALESCED = "COALESCED"


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """`ttl`: seconds an entry is fresh. `stale_ttl`: seconds past `ttl` it may still be served
    when the upstream fails with one of the cache's `stale_on` errors."""

    ttl: float
    stale_ttl: float = 0.0

    def __post_init__(self) -> None:
        if not (self.ttl >= 0 and self.stale_ttl >= 0):
            raise ValueError(f"ttl and stale_ttl must be >= 0, got {self.ttl}, {self.stale_ttl}")


@dataclass(frozen=True, slots=True)
class CacheResult(Generic[T]):
    """A value and how it was obtained. `age`: seconds since it was loaded. `generation`: the
    generation of its (family, scope) the value is valid for (see `EntityCache.generation`)."""

    value: T
    outcome: CacheOutcome
    age: float
    generation: int

    @property
    def stale(self) -> bool:
        return self.outcome is CacheOutcome.STALE


class _Entry:
    __slots__ = ("generation", "size", "stored_at", "value")

    def __init__(self, value: Any, stored_at: float, generation: int, size: int) -> None:
        self.value = value
        self.stored_at = stored_at
        self.generation = generation
        self.size = size


class _Loaded:
    """What a shared load hands to each of its waiters."""

    __slots__ = ("generation", "stale", "stored_at", "value")

    def __init__(self, value: Any, stored_at: float, generation: int, stale: bool) -> None:
        self.value = value
        self.stored_at = stored_at
        self.generation = generation
        self.stale = stale


class _Flight:
    __slots__ = ("generation", "task")

    def __init__(self, task: asyncio.Task[_Loaded], generation: int) -> None:
        self.task = task
        self.generation = generation


class _FamilyState:
    """Policy, generations, index and counters of one family, reached with one dict lookup."""

    __slots__ = (
        "coalesced",
        "errors",
        "evictions",
        "generation",
        "hits",
        "index",
        "misses",
        "policy",
        "scope_generations",
        "size",
        "stale",
        "ttl",
    )

    def __init__(self, policy: CachePolicy | None) -> None:
        self.policy = policy
        # Without a policy nothing is ever fresh; the slow path then reports the missing policy.
        self.ttl = policy.ttl if policy is not None else -1.0
        self.generation = 0
        self.scope_generations: dict[Hashable | None, int] = {}
        self.index: dict[Hashable | None, set[_Key]] = {}
        self.hits = self.misses = self.stale = self.coalesced = 0
        self.evictions = self.errors = self.size = 0


def _consume_exception(task: asyncio.Task[_Loaded]) -> None:
    # A load whose waiters were all cancelled still finishes; mark its error as retrieved so
    # asyncio does not log "Task exception was never retrieved".
    if not task.cancelled():
        task.exception()


class EntityCache:
    """Upstream reads keyed by (principal, family, scope, key), shared by REST and GraphQL.

    Single-threaded asyncio: no locks. Entries are kept past their ttl, up to ttl + stale_ttl,
    so that an upstream failure can be answered with the last good value. Size is bounded by
    entry count and optionally by estimated bytes, evicting least recently used first.
    """

    def __init__(
        self,
        policies: Mapping[Family, CachePolicy],
        *,
        maxsize: int = 10_000,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        stale_on: tuple[type[BaseException], ...] = (
            UpstreamUnavailable,
            UpstreamTimeout,
            UpstreamBadResponse,
        ),
        sizeof: Callable[[Any], int] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self._families = {family: _FamilyState(policies.get(family)) for family in Family}
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._inflight: dict[_Key, _Flight] = {}
        self._maxsize = maxsize
        self._max_bytes = max_bytes
        self._bytes = 0
        self._clock = clock
        self._stale_on = stale_on
        self._sizeof = sizeof or estimate_size
        # One counter for all generations, so a (family, scope) generation is the larger of its
        # family's and its scope's and still moves whenever either is bumped.
        self._counter = 0
        # Told of every invalidation made here (e.g. to tell other replicas); None: nobody.
        self.listener: Callable[[Family, Hashable | None], None] | None = None
        self._ttl_cap: float | None = None

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @property
    def nbytes(self) -> int:
        """Estimated bytes held (0 unless `max_bytes` is set: sizes are only measured then)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def policy(self, family: Family) -> CachePolicy | None:
        return self._families[family].policy

    async def get(
        self,
        principal: str,
        family: Family,
        key: Hashable,
        loader: Callable[[], Awaitable[T]],
        *,
        scope: Hashable | None = None,
        size: Callable[[T], int] | None = None,
    ) -> CacheResult[T]:
        """The cached value, or the loader's, loaded once however many callers miss together.

        `principal` is a non-secret fingerprint of the upstream credential. `scope` is what a
        write invalidates exactly (e.g. a resource id). `size` measures a loaded value for the
        byte bound (default: `estimate_size`). A loader error in `stale_on` is answered with an
        expired entry younger than ttl + stale_ttl, as STALE; other errors reach every waiter.
        """
        hit = self.peek(principal, family, key, scope=scope)
        if hit is not None:
            return hit
        state = self._families[family]
        full_key: _Key = (principal, family, scope, key)
        return await self._get_slow(state, full_key, self._entries.get(full_key), loader, size)

    def peek(
        self, principal: str, family: Family, key: Hashable, *, scope: Hashable | None = None
    ) -> CacheResult[Any] | None:
        """A fresh entry as a HIT (counted and tracked like `get`'s), or None without waiting:
        lets a resolver answer synchronously when nothing needs loading."""
        state = self._families[family]
        full_key: _Key = (principal, family, scope, key)
        entry = self._entries.get(full_key)
        if entry is None:
            return None
        age = self._clock() - entry.stored_at
        if age >= state.ttl:
            return None
        self._entries.move_to_end(full_key)
        state.hits += 1
        tracker = active_tracker.get()
        if tracker is not None:
            tracker._record(family, scope, entry.generation, entry.stored_at + state.ttl)
        return CacheResult(entry.value, CacheOutcome.HIT, age, entry.generation)

    async def _get_slow(
        self,
        state: _FamilyState,
        full_key: _Key,
        entry: _Entry | None,
        loader: Callable[[], Awaitable[T]],
        size: Callable[[T], int] | None,
    ) -> CacheResult[T]:
        _, family, scope, _ = full_key
        policy = state.policy
        if policy is None:
            raise KeyError(f"no cache policy for family {family.value!r}")
        if entry is not None and self._clock() - entry.stored_at >= policy.ttl + policy.stale_ttl:
            self._drop(full_key)
        generation = self.generation(family, scope)
        flight = self._inflight.get(full_key)
        # A load that started before an invalidation may return pre-write data: callers
        # arriving after the invalidation start their own load instead of joining it.
        leader = flight is None or flight.generation != generation
        if flight is None or leader:
            flight = self._start_load(full_key, state, loader, size, generation)
        tracker = active_tracker.get()
        try:
            loaded = await asyncio.shield(flight.task)
        except BaseException:
            if tracker is not None:
                tracker.failed = True
            raise
        if loaded.stale:
            outcome = CacheOutcome.STALE
            state.stale += 1
        elif leader:
            outcome = CacheOutcome.MISS
            state.misses += 1
        else:
            outcome = CacheOutcome.COALESCED
            state.coalesced += 1
        if tracker is not None:
            tracker._record(family, scope, loaded.generation, loaded.stored_at + state.ttl)
            if loaded.stale:
                tracker.served_stale = True
        return CacheResult(
            loaded.value, outcome, self._clock() - loaded.stored_at, loaded.generation
        )

    def _start_load(
        self,
        full_key: _Key,
        state: _FamilyState,
        loader: Callable[[], Awaitable[T]],
        size: Callable[[T], int] | None,
        generation: int,
    ) -> _Flight:
        # The load runs in its own task so that no single waiter's cancellation cancels it,
        # and without the leader's tracker, which must not see reads made for everyone.
        context = contextvars.copy_context()
        context.run(active_tracker.set, None)
        task = asyncio.create_task(
            self._load(full_key, state, loader, size, generation), context=context
        )
        task.add_done_callback(_consume_exception)
        flight = self._inflight[full_key] = _Flight(task, generation)
        return flight

    async def _load(
        self,
        full_key: _Key,
        state: _FamilyState,
        loader: Callable[[], Awaitable[T]],
        size: Callable[[T], int] | None,
        generation: int,
    ) -> _Loaded:
        _, family, scope, _ = full_key
        try:
            value = await loader()
        except self._stale_on:
            fallback = self._stale_entry(full_key, state)
            if fallback is None:
                state.errors += 1
                raise
            return _Loaded(fallback.value, fallback.stored_at, fallback.generation, stale=True)
        except BaseException:
            state.errors += 1
            # An authoritative error (not found, forbidden...) means the old value is wrong now.
            self._drop_if_expired(full_key, state)
            raise
        finally:
            flight = self._inflight.get(full_key)
            if flight is not None and flight.task is asyncio.current_task():
                del self._inflight[full_key]
        stored_at = self._clock()
        # Only a load that no invalidation overtook may populate the cache; its waiters still
        # get the value, and their trackers record the old generation.
        if self.generation(family, scope) == generation:
            nbytes = 0
            if self._max_bytes is not None:
                nbytes = size(value) if size is not None else self._sizeof(value)
            self._store(full_key, state, _Entry(value, stored_at, generation, nbytes))
        return _Loaded(value, stored_at, generation, stale=False)

    def _stale_entry(self, full_key: _Key, state: _FamilyState) -> _Entry | None:
        entry = self._entries.get(full_key)
        policy = state.policy
        if entry is None or policy is None:
            return None
        if self._clock() - entry.stored_at < policy.ttl + policy.stale_ttl:
            return entry
        return None

    def _drop_if_expired(self, full_key: _Key, state: _FamilyState) -> None:
        entry = self._entries.get(full_key)
        if entry is not None and self._clock() - entry.stored_at >= state.ttl:
            self._drop(full_key)

    def _store(self, full_key: _Key, state: _FamilyState, entry: _Entry) -> None:
        max_bytes = self._max_bytes
        if max_bytes is not None and entry.size > max_bytes:
            # Storing it would evict everything else and still not fit.
            self._drop(full_key)
            return
        old = self._entries.pop(full_key, None)
        if old is None:
            state.size += 1
            scope = full_key[2]
            keys = state.index.get(scope)
            if keys is None:
                keys = state.index[scope] = set()
            keys.add(full_key)
        else:
            self._bytes -= old.size
        self._entries[full_key] = entry
        self._bytes += entry.size
        while len(self._entries) > self._maxsize or (
            max_bytes is not None and self._bytes > max_bytes
        ):
            evicted_key, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size
            evicted_state = self._families[evicted_key[1]]
            evicted_state.evictions += 1
            evicted_state.size -= 1
            self._unindex(evicted_state, evicted_key)

    def _drop(self, full_key: _Key) -> None:
        entry = self._entries.pop(full_key, None)
        if entry is None:
            return
        self._bytes -= entry.size
        state = self._families[full_key[1]]
        state.size -= 1
        self._unindex(state, full_key)

    @staticmethod
    def _unindex(state: _FamilyState, full_key: _Key) -> None:
        scope = full_key[2]
        keys = state.index.get(scope)
        if keys is not None:
            keys.discard(full_key)
            if not keys:
                del state.index[scope]

    @property
    def writes(self) -> int:
        """Moves on every invalidation anywhere: unchanged means no generation has moved."""
        return self._counter

    def generation(self, family: Family, scope: Hashable | None = None) -> int:
        """A counter that moves whenever (family, scope)'s entries are invalidated.

        `scope=None` is the family's unscoped entries, which only a family-wide invalidation
        drops; a scope's generation also moves with its family's.
        """
        state = self._families[family]
        if scope is None:
            return state.generation
        # A family-wide invalidation empties scope_generations, so what remains is newer.
        return state.scope_generations.get(scope, state.generation)

    def invalidate(self, family: Family, scope: Hashable | None = None) -> None:
        """Drop `family`'s entries in `scope` (or all of them when None) for every principal.

        Costs O(entries dropped). Loads in flight for them will not populate the cache.
        """
        state = self._families[family]
        self._counter += 1
        if self.listener is not None:
            self.listener(family, scope)
        if scope is None:
            state.generation = self._counter
            state.scope_generations.clear()
            index, state.index = state.index, {}
            for keys in index.values():
                self._pop_all(state, keys)
            return
        state.scope_generations[scope] = self._counter
        scoped = state.index.pop(scope, None)
        if scoped is not None:
            self._pop_all(state, scoped)
        if len(state.scope_generations) > _MAX_SCOPE_GENERATIONS:
            self.invalidate(family)

    def _pop_all(self, state: _FamilyState, keys: set[_Key]) -> None:
        for full_key in keys:
            entry = self._entries.pop(full_key, None)
            if entry is not None:
                self._bytes -= entry.size
                state.size -= 1

    def set_policy(self, family: Family, policy: CachePolicy) -> None:
        """Change a family's policy; it applies at once to the entries already held."""
        state = self._families[family]
        state.policy = policy
        state.ttl = policy.ttl if self._ttl_cap is None else min(policy.ttl, self._ttl_cap)

    @property
    def ttl_cap(self) -> float | None:
        return self._ttl_cap

    def cap_ttls(self, cap: float | None) -> None:
        """Make every entry fresh for at most `cap` seconds (None: the policies' TTLs again),
        e.g. while invalidations from other replicas may be missed."""
        if cap is not None and (self._ttl_cap is None or cap < self._ttl_cap):
            # Stored responses were given the longer TTL: moving every generation makes them
            # miss, while the entries stay for stale-if-error.
            for state in self._families.values():
                self._counter += 1
                state.generation = self._counter
                state.scope_generations.clear()
        self._ttl_cap = cap
        for state in self._families.values():
            if state.policy is not None:
                state.ttl = state.policy.ttl if cap is None else min(state.policy.ttl, cap)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per family: hits, misses, stale, coalesced, errors (failed loads), evictions, size."""
        return {
            family.value: {
                "hits": state.hits,
                "misses": state.misses,
                "stale": state.stale,
                "coalesced": state.coalesced,
                "errors": state.errors,
                "evictions": state.evictions,
                "size": state.size,
            }
            for family, state in self._families.items()
        }

    def clear(self) -> None:
        """Forget every entry. All generations move, so no earlier load or response survives."""
        self._entries.clear()
        self._bytes = 0
        for state in self._families.values():
            self._counter += 1
            state.generation = self._counter
            state.scope_generations.clear()
            state.index.clear()
            state.size = 0


def estimate_size(value: object, _depth: int = 0) -> int:
    """A cheap estimate of the bytes `value` holds: containers past a few items are sampled."""
    if isinstance(value, str | bytes | bytearray):
        return sys.getsizeof(value)
    if value is None or isinstance(value, int | float | bool):
        return 28
    if _depth >= _SIZE_MAX_DEPTH:
        return 64
    depth = _depth + 1
    if isinstance(value, dict):
        items = value.items()
        total = sum(
            estimate_size(k, depth) + estimate_size(v, depth)
            for k, v in _sample(items, _SIZE_SAMPLE)
        )
        return sys.getsizeof(value) + _extrapolate(total, len(value))
    if isinstance(value, list | tuple | set | frozenset):
        total = sum(estimate_size(item, depth) for item in _sample(value, _SIZE_SAMPLE))
        return sys.getsizeof(value) + _extrapolate(total, len(value))
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return sys.getsizeof(value) + estimate_size(attributes, depth)
    return sys.getsizeof(value)


def _sample(items: Any, n: int) -> list[Any]:
    sample: list[Any] = []
    for item in items:
        if len(sample) == n:
            break
        sample.append(item)
    return sample


def _extrapolate(sampled_total: int, count: int) -> int:
    if count <= _SIZE_SAMPLE:
        return sampled_total
    return sampled_total * count // _SIZE_SAMPLE
