"""Tests of the entity cache, the read tracker and the response cache."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import anyio
import pytest

from app.cache import (
    CacheOutcome,
    CachePolicy,
    CacheResult,
    EntityCache,
    Family,
    ReadTracker,
    ResponseCache,
    estimate_size,
    response_key,
)
from app.cache import entities as cache_module
from app.core.errors import GatewayError, NotFound, UpstreamTimeout, UpstreamUnavailable

pytestmark = pytest.mark.anyio

ALICE = "principal-alice"
BOB = "principal-bob"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Loader:
    """Counts its calls; returns `value` (or raises `error`), optionally after `gate` opens."""

    def __init__(self, value: Any = "v", *, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error
        self.calls = 0
        self.gate: anyio.Event | None = None

    async def __call__(self) -> Any:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.value

    def hold(self) -> anyio.Event:
        self.gate = anyio.Event()
        return self.gate


def policies(ttl: float = 10.0, stale_ttl: float = 60.0) -> dict[Family, CachePolicy]:
    return {family: CachePolicy(ttl=ttl, stale_ttl=stale_ttl) for family in Family}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> EntityCache:
    return EntityCache(policies(), clock=clock)


async def gather(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run `calls` concurrently; their results (or raised exceptions) in order."""
    results: list[Any] = [None] * len(calls)

    async def run(i: int, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            results[i] = await call()
        except GatewayError as exc:
            results[i] = exc

    # A bound, so that a single-flight bug fails the test instead of hanging it.
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i, call in enumerate(calls):
                tg.start_soon(run, i, call)
    return results


def getter(
    cache: EntityCache,
    loader: Loader,
    principal: str = ALICE,
    family: Family = Family.BOOT_RESOURCE,
    key: Hashable = "k",
    scope: Hashable | None = None,
) -> Callable[[], Awaitable[CacheResult[Any]]]:
    async def call() -> CacheResult[Any]:
        return await cache.get(principal, family, key, loader, scope=scope)

    return call


class TestEntityCacheBasics:
    async def test_get_returns_miss_then_hit(self, cache: EntityCache, clock: FakeClock) -> None:
        loader = Loader({"id": 1})

        first = await cache.get(ALICE, Family.BOOT_RESOURCE, 1, loader)
        clock.advance(3)
        second = await cache.get(ALICE, Family.BOOT_RESOURCE, 1, loader)

        assert (first.value, first.outcome, first.age) == ({"id": 1}, CacheOutcome.MISS, 0)
        assert (second.value, second.outcome, second.age) == ({"id": 1}, CacheOutcome.HIT, 3)
        assert loader.calls == 1

    async def test_get_reloads_when_ttl_expired(self, cache: EntityCache, clock: FakeClock) -> None:
        loader = Loader()
        await cache.get(ALICE, Family.BOOT_RESOURCE, 1, loader)

        clock.advance(10)
        result = await cache.get(ALICE, Family.BOOT_RESOURCE, 1, loader)

        assert result.outcome is CacheOutcome.MISS
        assert loader.calls == 2

    async def test_ttl_is_per_family(self, clock: FakeClock) -> None:
        cache = EntityCache(
            {
                Family.BOOT_RESOURCES: CachePolicy(ttl=5),
                Family.IMPORT_STATUS: CachePolicy(ttl=1),
            },
            clock=clock,
        )
        lists, status = Loader(), Loader()
        await cache.get(ALICE, Family.BOOT_RESOURCES, "all", lists)
        await cache.get(ALICE, Family.IMPORT_STATUS, "all", status)

        clock.advance(2)
        lists_result = await cache.get(ALICE, Family.BOOT_RESOURCES, "all", lists)
        status_result = await cache.get(ALICE, Family.IMPORT_STATUS, "all", status)

        assert lists_result.outcome is CacheOutcome.HIT
        assert status_result.outcome is CacheOutcome.MISS

    async def test_get_raises_when_family_has_no_policy(self, clock: FakeClock) -> None:
        cache = EntityCache({Family.BOOT_SOURCES: CachePolicy(ttl=5)}, clock=clock)

        with pytest.raises(KeyError, match="selections"):
            await cache.get(ALICE, Family.SELECTIONS, 1, Loader())

    async def test_same_key_in_other_family_or_scope_is_another_entry(
        self, cache: EntityCache
    ) -> None:
        a, b, c = Loader("a"), Loader("b"), Loader("c")

        ra = await cache.get(ALICE, Family.BOOT_SOURCE, 1, a)
        rb = await cache.get(ALICE, Family.SELECTIONS, 1, b)
        rc = await cache.get(ALICE, Family.SELECTIONS, 1, c, scope=7)

        assert [ra.value, rb.value, rc.value] == ["a", "b", "c"]

    def test_policy_rejects_negative_ttl(self) -> None:
        with pytest.raises(ValueError, match="ttl"):
            CachePolicy(ttl=-1)


class TestPrincipalIsolation:
    async def test_get_loads_once_per_principal_for_same_key(self, cache: EntityCache) -> None:
        alice_loader, bob_loader = Loader("alice's"), Loader("bob's")

        alice = await cache.get(ALICE, Family.BOOT_RESOURCES, "all", alice_loader)
        bob = await cache.get(BOB, Family.BOOT_RESOURCES, "all", bob_loader)
        alice_again = await cache.get(ALICE, Family.BOOT_RESOURCES, "all", bob_loader)

        assert (alice.value, bob.value) == ("alice's", "bob's")
        assert (alice.outcome, bob.outcome) == (CacheOutcome.MISS, CacheOutcome.MISS)
        assert alice_again.value == "alice's"
        assert (alice_loader.calls, bob_loader.calls) == (1, 1)

    async def test_get_does_not_coalesce_across_principals_when_concurrent(
        self, cache: EntityCache
    ) -> None:
        alice_loader, bob_loader = Loader("alice's"), Loader("bob's")
        alice_gate, bob_gate = alice_loader.hold(), bob_loader.hold()

        async def release() -> None:
            await anyio.wait_all_tasks_blocked()
            alice_gate.set()
            bob_gate.set()

        alice, bob, _ = await gather(
            getter(cache, alice_loader, ALICE),
            getter(cache, bob_loader, BOB),
            release,
        )

        assert (alice.value, alice.outcome) == ("alice's", CacheOutcome.MISS)
        assert (bob.value, bob.outcome) == ("bob's", CacheOutcome.MISS)
        assert (alice_loader.calls, bob_loader.calls) == (1, 1)


class TestSingleFlight:
    async def test_get_coalesces_concurrent_misses_into_one_load(self, cache: EntityCache) -> None:
        loader = Loader("shared")
        gate = loader.hold()

        async def release() -> None:
            await anyio.wait_all_tasks_blocked()
            gate.set()

        *results, _ = await gather(*[getter(cache, loader)] * 100, release)

        assert loader.calls == 1
        outcomes = [r.outcome for r in results]
        assert outcomes.count(CacheOutcome.MISS) == 1
        assert outcomes.count(CacheOutcome.COALESCED) == 99
        assert {r.value for r in results} == {"shared"}
        assert cache.stats()["boot-resource"]["coalesced"] == 99

    async def test_error_reaches_every_waiter_when_load_fails(self, cache: EntityCache) -> None:
        loader = Loader(error=NotFound("no such resource"))
        gate = loader.hold()

        async def release() -> None:
            await anyio.wait_all_tasks_blocked()
            gate.set()

        *results, _ = await gather(*[getter(cache, loader)] * 10, release)

        assert loader.calls == 1
        assert all(isinstance(r, NotFound) for r in results)
        assert cache.stats()["boot-resource"]["errors"] == 1

    async def test_get_loads_again_when_previous_load_failed(self, cache: EntityCache) -> None:
        loader = Loader("recovered", error=UpstreamUnavailable("down"))
        with pytest.raises(UpstreamUnavailable):
            await cache.get(ALICE, Family.BOOT_RESOURCE, 1, loader)

        loader.error = None
        result = await cache.get(ALICE, Family.BOOT_RESOURCE, 1, loader)

        assert (result.value, result.outcome) == ("recovered", CacheOutcome.MISS)
        assert loader.calls == 2
        assert len(cache) == 1

    async def test_cancelling_one_waiter_does_not_cancel_the_load(self, cache: EntityCache) -> None:
        loader = Loader("shared")
        gate = loader.hold()
        leader_scope = anyio.CancelScope()
        leader_results: list[CacheResult[Any]] = []

        async def leader() -> None:
            with leader_scope:
                leader_results.append(await cache.get(ALICE, Family.BOOT_RESOURCE, "k", loader))

        async def cancel_leader_then_release() -> None:
            await anyio.wait_all_tasks_blocked()
            leader_scope.cancel()
            await anyio.wait_all_tasks_blocked()
            gate.set()

        _, waiter, _ = await gather(leader, getter(cache, loader), cancel_leader_then_release)

        assert leader_scope.cancelled_caught
        assert leader_results == []
        assert (waiter.value, waiter.outcome) == ("shared", CacheOutcome.COALESCED)
        assert loader.calls == 1

    async def test_load_is_cached_when_every_waiter_was_cancelled(self, cache: EntityCache) -> None:
        loader = Loader("finished anyway")
        gate = loader.hold()
        scopes = [anyio.CancelScope(), anyio.CancelScope()]

        def reader(scope: anyio.CancelScope) -> Callable[[], Awaitable[None]]:
            async def read() -> None:
                with scope:
                    await cache.get(ALICE, Family.BOOT_RESOURCE, "k", loader)

            return read

        async def cancel_all() -> None:
            await anyio.wait_all_tasks_blocked()
            for scope in scopes:
                scope.cancel()

        assert await gather(*map(reader, scopes), cancel_all) == [None, None, None]
        assert all(scope.cancelled_caught for scope in scopes)
        gate.set()
        await anyio.wait_all_tasks_blocked()
        result = await cache.get(ALICE, Family.BOOT_RESOURCE, "k", loader)

        assert (result.value, result.outcome) == ("finished anyway", CacheOutcome.HIT)
        assert loader.calls == 1


class TestStaleIfError:
    async def test_get_serves_stale_when_upstream_unavailable_within_bound(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader("last good"))
        clock.advance(10 + 59)

        failing = Loader(error=UpstreamUnavailable("down"))
        result = await cache.get(ALICE, Family.BOOT_SOURCES, "all", failing)

        assert (result.value, result.outcome, result.age) == ("last good", CacheOutcome.STALE, 69)
        assert result.stale
        assert cache.stats()["boot-sources"]["stale"] == 1

    async def test_get_loads_again_after_serving_stale(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader("last good"))
        clock.advance(11)
        failing = Loader(error=UpstreamTimeout("slow"))
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", failing)

        await cache.get(ALICE, Family.BOOT_SOURCES, "all", failing)

        assert failing.calls == 2

    async def test_get_raises_when_upstream_unavailable_past_stale_bound(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader("last good"))
        clock.advance(10 + 60)

        with pytest.raises(UpstreamUnavailable):
            await cache.get(
                ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamUnavailable("down"))
            )
        assert len(cache) == 0

    async def test_get_raises_when_stale_bound_passes_during_the_load(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader("last good"))
        clock.advance(69)
        failing = Loader(error=UpstreamTimeout("slow"))
        gate = failing.hold()

        async def time_out_late() -> None:
            await anyio.wait_all_tasks_blocked()
            clock.advance(1)
            gate.set()

        result, _ = await gather(
            getter(cache, failing, family=Family.BOOT_SOURCES, key="all"), time_out_late
        )

        # The load's own error, not the stale "last good" that was servable when it started.
        assert result is failing.error
        fresh = Loader("fresh")
        assert (await cache.get(ALICE, Family.BOOT_SOURCES, "all", fresh)).value == "fresh"
        assert fresh.calls == 1

    async def test_get_raises_and_drops_entry_when_error_is_not_stale_eligible(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_RESOURCE, 1, Loader("deleted since"), scope=1)
        clock.advance(11)

        with pytest.raises(NotFound):
            await cache.get(ALICE, Family.BOOT_RESOURCE, 1, Loader(error=NotFound("gone")), scope=1)
        assert len(cache) == 0
        assert cache.stats()["boot-resource"]["size"] == 0

    async def test_get_serves_stale_to_coalesced_waiters(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader("last good"))
        clock.advance(11)
        failing = Loader(error=UpstreamUnavailable("down"))
        gate = failing.hold()

        async def release() -> None:
            await anyio.wait_all_tasks_blocked()
            gate.set()

        *results, _ = await gather(
            *[getter(cache, failing, family=Family.BOOT_SOURCES, key="all")] * 5, release
        )

        assert failing.calls == 1
        assert [(r.value, r.outcome) for r in results] == [("last good", CacheOutcome.STALE)] * 5

    async def test_get_raises_stale_eligible_error_when_no_entry(self, cache: EntityCache) -> None:
        with pytest.raises(UpstreamUnavailable):
            await cache.get(
                ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamUnavailable("down"))
            )

    async def test_get_serves_nothing_stale_when_stale_ttl_is_zero(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(ttl=10, stale_ttl=0), clock=clock)
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader("last good"))
        clock.advance(10)

        with pytest.raises(UpstreamUnavailable):
            await cache.get(
                ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamUnavailable("down"))
            )

    async def test_stale_on_is_configurable(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(), clock=clock, stale_on=(NotFound,))
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader("last good"))
        clock.advance(11)

        result = await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader(error=NotFound("?")))
        with pytest.raises(UpstreamUnavailable):
            await cache.get(
                ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamUnavailable("down"))
            )

        assert result.outcome is CacheOutcome.STALE


class TestInvalidation:
    async def test_invalidate_scope_drops_it_for_every_principal(self, cache: EntityCache) -> None:
        for principal in (ALICE, BOB):
            for resource_id in (42, 43):
                await cache.get(
                    principal, Family.BOOT_RESOURCE, resource_id, Loader(), scope=resource_id
                )
        before = cache.generation(Family.BOOT_RESOURCE, 42)

        cache.invalidate(Family.BOOT_RESOURCE, scope=42)

        loader = Loader()
        outcomes = {
            (principal, resource_id): (
                await cache.get(
                    principal, Family.BOOT_RESOURCE, resource_id, loader, scope=resource_id
                )
            ).outcome
            for principal in (ALICE, BOB)
            for resource_id in (42, 43)
        }
        assert outcomes == {
            (ALICE, 42): CacheOutcome.MISS,
            (BOB, 42): CacheOutcome.MISS,
            (ALICE, 43): CacheOutcome.HIT,
            (BOB, 43): CacheOutcome.HIT,
        }
        assert cache.generation(Family.BOOT_RESOURCE, 42) > before
        assert cache.generation(Family.BOOT_RESOURCE, 43) == before

    async def test_invalidate_family_drops_every_scope_and_unscoped_entry(
        self, cache: EntityCache
    ) -> None:
        await cache.get(ALICE, Family.SELECTIONS, "list", Loader(), scope=1)
        await cache.get(BOB, Family.SELECTIONS, "list", Loader(), scope=2)
        await cache.get(ALICE, Family.SELECTIONS, "unscoped", Loader())
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader())
        generations = [cache.generation(Family.SELECTIONS, s) for s in (None, 1, 2)]

        cache.invalidate(Family.SELECTIONS)

        assert len(cache) == 1
        assert cache.stats()["selections"]["size"] == 0
        assert all(
            cache.generation(Family.SELECTIONS, s) > g
            for s, g in zip((None, 1, 2), generations, strict=True)
        )
        assert cache.generation(Family.BOOT_SOURCES) == 0

    async def test_invalidate_scope_keeps_unscoped_entries(self, cache: EntityCache) -> None:
        await cache.get(ALICE, Family.BOOT_RESOURCES, "all", Loader())
        await cache.get(ALICE, Family.BOOT_RESOURCES, "page", Loader(), scope=3)

        cache.invalidate(Family.BOOT_RESOURCES, scope=3)

        result = await cache.get(ALICE, Family.BOOT_RESOURCES, "all", Loader())
        assert result.outcome is CacheOutcome.HIT
        assert cache.generation(Family.BOOT_RESOURCES) == 0

    async def test_invalidate_does_not_touch_other_families(self, cache: EntityCache) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader(), scope=1)

        cache.invalidate(Family.SELECTIONS, scope=1)

        result = await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader(), scope=1)
        assert result.outcome is CacheOutcome.HIT

    async def test_generation_only_increases(self, cache: EntityCache) -> None:
        seen = [cache.generation(Family.BOOT_RESOURCE, 1)]
        for scope in (1, None, 2, 1, None, 1):
            cache.invalidate(Family.BOOT_RESOURCE, scope)
            seen.append(cache.generation(Family.BOOT_RESOURCE, 1))

        assert seen == sorted(seen)
        assert seen[3] == seen[2]  # scope 2's invalidation is not scope 1's
        assert len(set(seen)) == len(seen) - 1

    async def test_in_flight_load_is_not_cached_when_invalidated_meanwhile(
        self, cache: EntityCache
    ) -> None:
        loader = Loader("pre-write")
        gate = loader.hold()

        async def write_then_release() -> None:
            await anyio.wait_all_tasks_blocked()
            cache.invalidate(Family.BOOT_RESOURCE, scope=5)
            gate.set()

        leader, waiter, _ = await gather(
            getter(cache, loader, scope=5), getter(cache, loader, scope=5), write_then_release
        )
        loader.value = "post-write"
        after = await cache.get(ALICE, Family.BOOT_RESOURCE, "k", loader, scope=5)

        assert (leader.value, leader.outcome) == ("pre-write", CacheOutcome.MISS)
        assert (waiter.value, waiter.outcome) == ("pre-write", CacheOutcome.COALESCED)
        assert (after.value, after.outcome) == ("post-write", CacheOutcome.MISS)
        assert leader.generation < cache.generation(Family.BOOT_RESOURCE, 5)
        assert after.generation == cache.generation(Family.BOOT_RESOURCE, 5)

    async def test_get_after_invalidation_does_not_join_earlier_load(
        self, cache: EntityCache
    ) -> None:
        old, new = Loader("pre-write"), Loader("post-write")
        old_gate, new_gate = old.hold(), new.hold()

        async def write_then_read() -> CacheResult[Any]:
            await anyio.wait_all_tasks_blocked()
            cache.invalidate(Family.BOOT_RESOURCE)
            new_gate.set()
            result = await cache.get(ALICE, Family.BOOT_RESOURCE, "k", new)
            old_gate.set()
            return result

        before, after = await gather(getter(cache, old), write_then_read)
        cached = await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader("unused"))

        assert (before.value, after.value) == ("pre-write", "post-write")
        assert after.outcome is CacheOutcome.MISS
        assert (cached.value, cached.outcome) == ("post-write", CacheOutcome.HIT)

    async def test_get_joins_newest_load_when_an_overtaken_load_finishes(
        self, cache: EntityCache
    ) -> None:
        old, new = Loader("pre-write"), Loader("post-write")
        old_gate, new_gate = old.hold(), new.hold()
        results: dict[str, CacheResult[Any]] = {}

        async def read(name: str, loader: Loader) -> None:
            results[name] = await cache.get(ALICE, Family.BOOT_RESOURCE, "k", loader)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read, "before", old)
                await anyio.wait_all_tasks_blocked()
                cache.invalidate(Family.BOOT_RESOURCE)
                tg.start_soon(read, "after", new)
                await anyio.wait_all_tasks_blocked()
                old_gate.set()  # the overtaken load ends while the newer one still runs
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(read, "joined", Loader("a third load"))
                await anyio.wait_all_tasks_blocked()
                new_gate.set()

        assert results["before"].value == "pre-write"
        assert (results["after"].value, results["after"].outcome) == (
            "post-write",
            CacheOutcome.MISS,
        )
        assert (results["joined"].value, results["joined"].outcome) == (
            "post-write",
            CacheOutcome.COALESCED,
        )

    async def test_clear_forgets_entries_and_moves_every_generation(
        self, cache: EntityCache
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader())
        cache.invalidate(Family.BOOT_SOURCE, scope=1)
        before = {f: cache.generation(f, 1) for f in Family}

        cache.clear()

        assert len(cache) == 0
        assert all(cache.generation(f, 1) > before[f] for f in Family)
        assert cache.stats()["boot-sources"]["size"] == 0

    async def test_scope_generations_fold_into_family_when_too_many(
        self, cache: EntityCache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cache_module, "_MAX_SCOPE_GENERATIONS", 3)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader(), scope=99)
        before = cache.generation(Family.BOOT_RESOURCE, 99)

        for scope in range(4):
            cache.invalidate(Family.BOOT_RESOURCE, scope)

        assert cache.generation(Family.BOOT_RESOURCE, 99) > before
        assert len(cache) == 0


class TestPolicyAndBounds:
    async def test_set_policy_applies_to_held_entries(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        loader = Loader()
        await cache.get(ALICE, Family.IMPORT_STATUS, "status", loader)
        clock.advance(2)

        cache.set_policy(Family.IMPORT_STATUS, CachePolicy(ttl=1, stale_ttl=0))
        result = await cache.get(ALICE, Family.IMPORT_STATUS, "status", loader)

        assert result.outcome is CacheOutcome.MISS
        assert cache.policy(Family.IMPORT_STATUS) == CachePolicy(ttl=1, stale_ttl=0)

    async def test_size_bound_evicts_least_recently_used(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(), maxsize=3, clock=clock)
        for key in ("a", "b", "c"):
            await cache.get(ALICE, Family.BOOT_RESOURCE, key, Loader(key))
        await cache.get(ALICE, Family.BOOT_RESOURCE, "a", Loader())  # "b" is now the oldest

        await cache.get(ALICE, Family.BOOT_SOURCES, "d", Loader("d"))

        outcomes = {
            key: (await cache.get(ALICE, Family.BOOT_RESOURCE, key, Loader())).outcome
            for key in ("a", "c")
        }
        assert outcomes == {"a": CacheOutcome.HIT, "c": CacheOutcome.HIT}
        assert len(cache) == 3
        stats = cache.stats()
        assert stats["boot-resource"]["evictions"] == 1
        assert stats["boot-resource"]["size"] == 2
        assert stats["boot-sources"]["size"] == 1

    async def test_byte_bound_evicts_by_measured_size(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(), max_bytes=100, clock=clock)

        for key in ("a", "b", "c"):
            await cache.get(ALICE, Family.BOOT_RESOURCE, key, Loader(key), size=lambda _: 40)

        assert len(cache) == 2
        assert cache.nbytes == 80
        assert cache.stats()["boot-resource"]["evictions"] == 1

    async def test_byte_bound_does_not_store_value_larger_than_bound(
        self, clock: FakeClock
    ) -> None:
        cache = EntityCache(policies(), max_bytes=100, clock=clock)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "small", Loader(b"x"), size=len)

        result = await cache.get(ALICE, Family.BOOT_RESOURCE, "huge", Loader(b"x" * 200), size=len)

        assert result.value == b"x" * 200
        assert len(cache) == 1
        assert cache.nbytes == 1

    async def test_byte_bound_estimates_size_when_not_given(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(), max_bytes=10_000, clock=clock)

        await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader({"name": "x" * 500}))

        assert 500 < cache.nbytes < 2_000

    async def test_invalidate_releases_bytes(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(), max_bytes=1_000, clock=clock)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader(b"x" * 10), scope=1, size=len)

        cache.invalidate(Family.BOOT_RESOURCE, scope=1)

        assert cache.nbytes == 0

    async def test_stats_counts_every_outcome_per_family(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        loader = Loader()
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", loader)
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", loader)
        await cache.get(BOB, Family.BOOT_SOURCES, "all", loader)
        clock.advance(11)
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamTimeout("slow")))

        stats = cache.stats()

        assert set(stats) == {family.value for family in Family}
        assert stats["boot-sources"] == {
            "hits": 1,
            "misses": 2,
            "stale": 1,
            "coalesced": 0,
            "errors": 0,
            "evictions": 0,
            "size": 2,
        }
        assert stats["selections"]["misses"] == 0


class TestConstructors:
    @pytest.mark.parametrize(("ttl", "stale_ttl"), [(-1, 0), (0, -1), (-0.5, -0.5)])
    def test_policy_refuses_a_negative_ttl_or_stale_ttl(self, ttl: float, stale_ttl: float) -> None:
        with pytest.raises(ValueError, match=r"^ttl and stale_ttl must be >= 0, got "):
            CachePolicy(ttl=ttl, stale_ttl=stale_ttl)

    def test_policy_takes_a_ttl_of_zero_or_below_one_second(self) -> None:
        assert CachePolicy(ttl=0).ttl == 0
        assert CachePolicy(ttl=0.5, stale_ttl=0).ttl == 0.5

    @pytest.mark.parametrize(
        ("bounds", "message"),
        [
            ({"maxsize": 0}, "maxsize must be >= 1"),
            ({"maxsize": -5}, "maxsize must be >= 1"),
            ({"max_bytes": 0}, "max_bytes must be >= 1"),
        ],
    )
    def test_cache_refuses_bounds_below_one(self, bounds: dict[str, int], message: str) -> None:
        with pytest.raises(ValueError, match=f"^{message}$"):
            EntityCache(policies(), **bounds)

    async def test_cache_of_one_entry_and_one_byte_holds_exactly_that(
        self, clock: FakeClock
    ) -> None:
        cache = EntityCache(policies(), maxsize=1, max_bytes=1, clock=clock)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "a", Loader(b"a"), size=len)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "b", Loader(b"b"), size=len)

        assert (len(cache), cache.nbytes) == (1, 1)
        assert cache.peek(ALICE, Family.BOOT_RESOURCE, "b") is not None
        assert cache.peek(ALICE, Family.BOOT_RESOURCE, "a") is None

    async def test_default_bound_is_ten_thousand_entries(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(), clock=clock)
        loader = Loader()
        for key in range(10_001):
            await cache.get(ALICE, Family.BOOT_RESOURCE, key, loader)

        assert len(cache) == 10_000
        assert cache.peek(ALICE, Family.BOOT_RESOURCE, 0) is None
        assert cache.stats()["boot-resource"]["evictions"] == 1


class TestByteAccounting:
    async def test_bytes_follow_a_replaced_entry(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(), max_bytes=100, clock=clock)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader(b"x" * 40), size=len)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "other", Loader(b"y" * 20), size=len)
        clock.advance(10)

        await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader(b"x" * 30), size=len)

        assert cache.nbytes == 50
        assert cache.stats()["boot-resource"]["size"] == len(cache) == 2

    async def test_a_replacement_too_large_to_hold_drops_the_old_value(
        self, clock: FakeClock
    ) -> None:
        cache = EntityCache(policies(), max_bytes=100, clock=clock)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader(b"x" * 40), size=len)
        clock.advance(10)

        fresh = await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader(b"x" * 101), size=len)
        clock.advance(1)  # within stale_ttl: the old value would still be served if it were kept
        failing = Loader(error=UpstreamUnavailable("down"))

        assert fresh.value == b"x" * 101
        assert (len(cache), cache.nbytes) == (0, 0)
        with pytest.raises(UpstreamUnavailable):
            await cache.get(ALICE, Family.BOOT_RESOURCE, "k", failing, size=len)

    async def test_values_filling_the_bound_exactly_are_all_kept(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(), max_bytes=100, clock=clock)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "a", Loader(b"a" * 60), size=len)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "b", Loader(b"b" * 40), size=len)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "one", Loader(b"c" * 100), size=len)

        assert cache.peek(ALICE, Family.BOOT_RESOURCE, "one") is not None
        assert (len(cache), cache.nbytes) == (1, 100)
        assert cache.stats()["boot-resource"]["evictions"] == 2

    async def test_bytes_after_evictions_drops_and_clear(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(ttl=10, stale_ttl=5), max_bytes=100, clock=clock)
        for key in range(5):  # 5 x 30 bytes: the two oldest are evicted
            await cache.get(ALICE, Family.BOOT_SOURCE, key, Loader(b"s" * 30), scope=key, size=len)
        assert (len(cache), cache.nbytes) == (3, 90)
        clock.advance(10)
        with pytest.raises(NotFound):  # an authoritative error drops the expired entry
            await cache.get(ALICE, Family.BOOT_SOURCE, 4, Loader(error=NotFound("?")), scope=4)
        assert (len(cache), cache.nbytes) == (2, 60)
        clock.advance(5)  # past stale_ttl too: the next read drops the entry before loading
        await cache.get(ALICE, Family.BOOT_SOURCE, 3, Loader(b"t" * 10), scope=3, size=len)
        assert (len(cache), cache.nbytes) == (2, 40)

        cache.clear()

        assert (len(cache), cache.nbytes) == (0, 0)

    async def test_nothing_is_measured_without_a_byte_bound(self, cache: EntityCache) -> None:
        await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader(b"x" * 1000))

        assert cache.nbytes == 0

    async def test_evicted_and_dropped_entries_leave_no_index_behind(
        self, clock: FakeClock
    ) -> None:
        cache = EntityCache(policies(), maxsize=2, clock=clock)
        for scope in range(6):
            await cache.get(ALICE, Family.BOOT_SOURCE, f"key-{scope}", Loader(), scope=scope)
        clock.advance(10)
        failing = Loader(error=NotFound("?"))
        with pytest.raises(NotFound):
            await cache.get(ALICE, Family.BOOT_SOURCE, "key-5", failing, scope=5)

        # The scope index must hold what the cache holds, or a flood of ids grows it for good.
        index = cache._families[Family.BOOT_SOURCE].index
        assert index == {4: {(ALICE, Family.BOOT_SOURCE, 4, "key-4")}}


class TestCounters:
    async def test_every_outcome_counts_once_per_read(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader())
        cache.peek(ALICE, Family.BOOT_SOURCES, "all")
        cache.peek(ALICE, Family.BOOT_SOURCES, "all")
        clock.advance(10)
        for _ in range(2):
            await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamTimeout("?")))
        for _ in range(2):
            with pytest.raises(NotFound):
                await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader(error=NotFound("?")))
        for _ in range(2):
            with pytest.raises(UpstreamTimeout):
                await cache.get(ALICE, Family.BOOT_SOURCE, 2, Loader(error=UpstreamTimeout("?")))

        stats = cache.stats()
        assert (stats["boot-sources"]["hits"], stats["boot-sources"]["stale"]) == (2, 2)
        assert stats["boot-source"]["errors"] == 4

    async def test_every_eviction_counts(self, clock: FakeClock) -> None:
        cache = EntityCache(policies(), maxsize=1, clock=clock)
        for key in range(3):
            await cache.get(ALICE, Family.BOOT_RESOURCE, key, Loader())

        assert cache.stats()["boot-resource"]["evictions"] == 2

    async def test_a_stale_answer_carries_the_generation_it_was_loaded_at(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        cache.invalidate(Family.BOOT_SOURCES)
        first = await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader("old"))
        clock.advance(11)

        stale = await cache.get(
            ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamTimeout(""))
        )

        assert (stale.outcome, stale.generation) == (CacheOutcome.STALE, first.generation)
        assert first.generation == cache.generation(Family.BOOT_SOURCES) > 0

    async def test_a_fresh_entry_survives_an_overtaken_load_that_failed(
        self, cache: EntityCache
    ) -> None:
        overtaken = Loader(error=NotFound("gone then"))
        gate = overtaken.hold()

        async def write_reload_then_fail_the_old_load() -> None:
            await anyio.wait_all_tasks_blocked()
            cache.invalidate(Family.BOOT_SOURCE, scope=1)
            await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader("after the write"), scope=1)
            gate.set()

        old, _ = await gather(
            getter(cache, overtaken, family=Family.BOOT_SOURCE, key=1, scope=1),
            write_reload_then_fail_the_old_load,
        )

        assert isinstance(old, NotFound)
        hit = cache.peek(ALICE, Family.BOOT_SOURCE, 1, scope=1)
        assert hit is not None
        assert hit.value == "after the write"

    async def test_an_authoritative_error_at_exactly_the_ttl_drops_the_entry(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_RESOURCE, 1, Loader("deleted since"))
        clock.advance(10)

        with pytest.raises(NotFound):
            await cache.get(ALICE, Family.BOOT_RESOURCE, 1, Loader(error=NotFound("gone")))

        assert len(cache) == 0

    async def test_a_load_failing_after_every_waiter_left_logs_nothing(
        self, cache: EntityCache, caplog: pytest.LogCaptureFixture
    ) -> None:
        failing = Loader(error=NotFound("gone"))
        gate = failing.hold()
        scope = anyio.CancelScope()

        async def leave() -> None:
            with scope:
                await cache.get(ALICE, Family.BOOT_RESOURCE, 1, failing)

        async def cancel_then_fail() -> None:
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            gate.set()

        with caplog.at_level(logging.ERROR, logger="asyncio"):
            await gather(leave, cancel_then_fail)
            await anyio.wait_all_tasks_blocked()
            gc.collect()

        assert scope.cancelled_caught
        assert failing.calls == 1
        assert [r.getMessage() for r in caplog.records] == []


class TestPeekAndListener:
    async def test_peek_records_the_read_in_the_active_tracker(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        cache.invalidate(Family.BOOT_RESOURCE, scope=7)
        loaded = await cache.get(ALICE, Family.BOOT_RESOURCE, 7, Loader("d"), scope=7)
        clock.advance(4)

        with ReadTracker() as tracker:
            hit = cache.peek(ALICE, Family.BOOT_RESOURCE, 7, scope=7)

        assert hit is not None
        assert (hit.value, hit.outcome, hit.age, hit.generation) == (
            "d",
            CacheOutcome.HIT,
            4,
            loaded.generation,
        )
        assert dict(tracker.dependencies) == {(Family.BOOT_RESOURCE, 7): loaded.generation}
        assert tracker.expires_at == clock.now - 4 + 10

    async def test_a_load_does_not_record_its_own_reads_in_the_leaders_tracker(
        self, cache: EntityCache
    ) -> None:
        async def load_through_another_read() -> str:
            await cache.get(ALICE, Family.SELECTIONS, "inner", Loader(), scope=3)
            return "outer"

        with ReadTracker() as tracker:
            await cache.get(ALICE, Family.BOOT_SOURCE, 3, load_through_another_read, scope=3)

        assert set(tracker.dependencies) == {(Family.BOOT_SOURCE, 3)}

    def test_listener_hears_each_invalidation_with_its_scope(self, cache: EntityCache) -> None:
        heard: list[tuple[Family, Hashable | None]] = []
        cache.listener = lambda family, scope: heard.append((family, scope))

        cache.invalidate(Family.SELECTIONS, scope=4)
        cache.invalidate(Family.BOOT_RESOURCES)

        assert heard == [(Family.SELECTIONS, 4), (Family.BOOT_RESOURCES, None)]

    async def test_scope_generations_fold_only_past_the_bound(
        self, cache: EntityCache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cache_module, "_MAX_SCOPE_GENERATIONS", 3)
        await cache.get(ALICE, Family.BOOT_RESOURCE, "k", Loader(), scope=99)

        for scope in range(3):
            cache.invalidate(Family.BOOT_RESOURCE, scope)

        assert cache.peek(ALICE, Family.BOOT_RESOURCE, "k", scope=99) is not None
        assert cache.generation(Family.BOOT_RESOURCE) == 0


class TestCappedTtls:
    async def test_a_cap_shortens_every_ttl_and_lifting_it_restores_them(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        cache.cap_ttls(2)
        await cache.get(ALICE, Family.BOOT_RESOURCES, "all", Loader())
        clock.advance(2)
        assert cache.peek(ALICE, Family.BOOT_RESOURCES, "all") is None
        await cache.get(ALICE, Family.BOOT_RESOURCES, "all", Loader())

        cache.cap_ttls(None)
        clock.advance(9)

        assert cache.ttl_cap is None
        assert cache.peek(ALICE, Family.BOOT_RESOURCES, "all") is not None

    async def test_a_policy_set_while_capped_stays_under_the_cap(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        cache.cap_ttls(3)
        cache.set_policy(Family.IMPORT_STATUS, CachePolicy(ttl=20))
        await cache.get(ALICE, Family.IMPORT_STATUS, "s", Loader())
        clock.advance(2)
        assert cache.peek(ALICE, Family.IMPORT_STATUS, "s") is not None
        clock.advance(1)

        assert cache.peek(ALICE, Family.IMPORT_STATUS, "s") is None
        assert cache.ttl_cap == 3

    def test_a_lower_cap_moves_every_generation_past_every_earlier_one(
        self, cache: EntityCache
    ) -> None:
        for _ in range(4):
            cache.invalidate(Family.SELECTIONS, scope=1)
        cache.invalidate(Family.BOOT_SOURCES)

        def generations() -> dict[Family, int]:
            return {f: cache.generation(f, 1) for f in Family}

        before = generations()
        cache.cap_ttls(5)
        capped = generations()
        cache.cap_ttls(5)
        cache.cap_ttls(8)
        cache.cap_ttls(None)
        unmoved = generations()
        cache.cap_ttls(4)

        assert min(capped.values()) > max(before.values())
        assert unmoved == capped  # an equal, higher or no cap serves nothing longer
        assert min(generations().values()) > max(capped.values())

    def test_no_cap_on_an_uncapped_cache_moves_nothing(self, cache: EntityCache) -> None:
        cache.invalidate(Family.BOOT_SOURCES)
        before = {f: cache.generation(f) for f in Family}

        cache.cap_ttls(None)

        assert {f: cache.generation(f) for f in Family} == before


class TestEstimateSize:
    @staticmethod
    def nest(value: object, levels: int) -> object:
        for _ in range(levels):
            value = [value]
        return value

    def test_every_scalar_counts_as_a_small_int(self) -> None:
        assert {estimate_size(v) for v in (None, 7, 2.5, True)} == {sys.getsizeof(1)}

    def test_a_container_counts_itself_and_each_item(self) -> None:
        items = ["x" * 100, b"y" * 50, 3]
        expected = sum(sys.getsizeof(i) for i in items[:2]) + sys.getsizeof(1)
        for container in (list(items), tuple(items), set(items), frozenset(items)):
            assert estimate_size(container) == sys.getsizeof(container) + expected

    def test_a_dict_counts_its_keys_and_values_as_a_list_of_them_would(self) -> None:
        deep_key = self.nest(("k" * 300,), 0)
        for _ in range(9):
            deep_key = (deep_key,)
        value = {"x" * 1000: [1, 2], deep_key: "v" * 200, 5: None}
        flat = [item for pair in value.items() for item in pair]

        own = estimate_size(value) - sys.getsizeof(value)
        assert own == estimate_size(flat) - sys.getsizeof(flat)
        assert own > 1200

    def test_large_containers_are_sampled_and_extrapolated(self) -> None:
        items = [1] * 1001 + ["x" * 10_000] * 3
        estimate = estimate_size(items)

        assert estimate == sys.getsizeof(items) + sys.getsizeof(1) * 1004
        assert type(estimate) is int
        table = {n: n for n in range(1000)}
        assert estimate_size(table) == sys.getsizeof(table) + sys.getsizeof(1) * 2000
        odd = [10**30] * 15 + [b"x" * 100] * 2  # 17 items, 16 sampled
        sampled = sys.getsizeof(1) * 15 + sys.getsizeof(b"x" * 100)
        assert estimate_size(odd) == sys.getsizeof(odd) + sampled * 17 // 16
        assert type(estimate_size(odd)) is int

    def test_nesting_is_measured_eight_levels_deep_and_no_further(self) -> None:
        big = list(range(1000))
        inner = sys.getsizeof(big) + sys.getsizeof(1) * 1000
        wrappers = 7 * sys.getsizeof([None])

        assert estimate_size(self.nest(big, 7)) == wrappers + inner
        assert estimate_size(self.nest(big, 8)) == wrappers + sys.getsizeof([None]) + 64
        assert estimate_size(big, 8) == 64

    def test_values_that_contain_themselves_are_measured(self) -> None:
        loop: list[object] = []
        loop.append(loop)
        table: dict[str, object] = {}
        table["self"] = table

        class Node:
            def __init__(self) -> None:
                self.me = self

        for value in (loop, table, Node()):
            assert estimate_size(value) > sys.getsizeof(value)

    def test_an_object_counts_its_attributes(self) -> None:
        class Record:
            def __init__(self, text: str) -> None:
                self.text = text

        small, large = Record("x"), Record("x" * 5000)

        assert estimate_size(large) - estimate_size(small) == 4999
        assert estimate_size(small) == sys.getsizeof(small) + estimate_size(small.__dict__, 1)

    def test_an_object_without_attributes_counts_its_own_size(self) -> None:
        assert estimate_size(range(100)) == sys.getsizeof(range(100)) != sys.getsizeof(None)


class TestReadTracker:
    async def test_tracker_records_generation_of_each_read(self, cache: EntityCache) -> None:
        cache.invalidate(Family.BOOT_RESOURCE, scope=1)
        with ReadTracker() as tracker:
            await cache.get(ALICE, Family.BOOT_RESOURCES, "all", Loader())  # miss
            await cache.get(ALICE, Family.BOOT_RESOURCES, "all", Loader())  # hit
            await cache.get(ALICE, Family.BOOT_RESOURCE, 1, Loader(), scope=1)

        assert dict(tracker.dependencies) == {
            (Family.BOOT_RESOURCES, None): 0,
            (Family.BOOT_RESOURCE, 1): cache.generation(Family.BOOT_RESOURCE, 1),
        }
        assert tracker.cacheable
        assert ReadTracker.current() is None

    async def test_tracker_keeps_oldest_generation_when_read_twice_across_a_write(
        self, cache: EntityCache
    ) -> None:
        with ReadTracker() as tracker:
            first = await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader(), scope=1)
            cache.invalidate(Family.BOOT_SOURCE, scope=1)
            second = await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader(), scope=1)

        assert first.generation < second.generation
        assert tracker.dependencies[(Family.BOOT_SOURCE, 1)] == first.generation

    async def test_tracker_records_nothing_when_not_active(self, cache: EntityCache) -> None:
        tracker = ReadTracker()

        await cache.get(ALICE, Family.BOOT_RESOURCES, "all", Loader())

        assert dict(tracker.dependencies) == {}

    async def test_tracker_collects_reads_of_concurrent_tasks(self, cache: EntityCache) -> None:
        with ReadTracker() as tracker:
            results = await gather(
                *[
                    getter(cache, Loader(), key=i, scope=i, family=Family.BOOT_RESOURCE)
                    for i in range(5)
                ]
            )

        assert {r.outcome for r in results} == {CacheOutcome.MISS}

        assert set(tracker.dependencies) == {(Family.BOOT_RESOURCE, i) for i in range(5)}

    async def test_tracker_keeps_earliest_expiry(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        cache.set_policy(Family.IMPORT_STATUS, CachePolicy(ttl=2))
        with ReadTracker() as tracker:
            await cache.get(ALICE, Family.BOOT_RESOURCES, "all", Loader())
            await cache.get(ALICE, Family.IMPORT_STATUS, "s", Loader())

        assert tracker.expires_at == clock.now + 2

    async def test_tracker_is_not_cacheable_when_read_was_stale(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader())
        clock.advance(11)

        with ReadTracker() as tracker:
            await cache.get(
                ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamUnavailable("down"))
            )

        assert tracker.served_stale
        assert not tracker.cacheable

    async def test_tracker_is_not_cacheable_when_read_failed(self, cache: EntityCache) -> None:
        with ReadTracker() as tracker, pytest.raises(NotFound):
            await cache.get(ALICE, Family.BOOT_RESOURCE, 9, Loader(error=NotFound("?")))

        assert tracker.failed
        assert not tracker.cacheable

    async def test_nested_tracker_passes_reads_to_enclosing_one(self, cache: EntityCache) -> None:
        with ReadTracker() as outer:
            with ReadTracker() as inner:
                await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader(), scope=1)
            assert ReadTracker.current() is outer

        assert set(inner.dependencies) == {(Family.BOOT_SOURCE, 1)}
        assert set(outer.dependencies) == {(Family.BOOT_SOURCE, 1)}
        assert outer.expires_at == inner.expires_at < float("inf")

    async def test_nested_tracker_passes_staleness_to_enclosing_one(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader())
        clock.advance(11)

        with ReadTracker() as outer, ReadTracker():
            await cache.get(
                ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamUnavailable("down"))
            )

        assert outer.served_stale
        assert not outer.cacheable

    async def test_nested_tracker_passes_the_generations_it_read(self, cache: EntityCache) -> None:
        cache.invalidate(Family.BOOT_SOURCE, scope=1)
        with ReadTracker() as outer:
            with ReadTracker():
                read = await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader(), scope=1)
            with ReadTracker():
                cache.invalidate(Family.BOOT_SOURCE, scope=1)
                await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader(), scope=1)

        assert dict(outer.dependencies) == {(Family.BOOT_SOURCE, 1): read.generation}
        assert read.generation > 0

    @pytest.mark.parametrize("flag", ["served_stale", "failed"])
    async def test_a_clean_nested_tracker_keeps_the_enclosing_ones_flags(
        self, cache: EntityCache, flag: str
    ) -> None:
        with ReadTracker() as outer:
            setattr(outer, flag, True)  # what a stale or failed read of its own leaves
            with ReadTracker():
                await cache.get(ALICE, Family.BOOT_SOURCE, 1, Loader(), scope=1)

        assert getattr(outer, flag)
        assert not outer.cacheable

    async def test_a_failed_nested_read_makes_the_enclosing_tracker_uncacheable(
        self, cache: EntityCache
    ) -> None:
        with ReadTracker() as outer:
            with ReadTracker(), pytest.raises(NotFound):
                await cache.get(ALICE, Family.BOOT_RESOURCE, 9, Loader(error=NotFound("?")))
            await cache.get(ALICE, Family.BOOT_RESOURCE, 1, Loader())

        assert outer.failed
        assert not outer.cacheable

    async def test_tracker_records_load_start_generation_when_invalidated_mid_load(
        self, cache: EntityCache
    ) -> None:
        loader = Loader()
        gate = loader.hold()

        async def read() -> None:
            await cache.get(ALICE, Family.BOOT_SOURCE, 1, loader, scope=1)

        async def write_then_release() -> None:
            await anyio.wait_all_tasks_blocked()
            cache.invalidate(Family.BOOT_SOURCE, scope=1)
            gate.set()

        with ReadTracker() as tracker:
            await gather(read, write_then_release)

        assert tracker.dependencies[(Family.BOOT_SOURCE, 1)] == 0
        assert cache.generation(Family.BOOT_SOURCE, 1) > 0


class TestResponseCache:
    @pytest.fixture
    def responses(self, cache: EntityCache) -> ResponseCache:
        return ResponseCache(cache, ttl=30)

    @staticmethod
    async def build(cache: EntityCache, principal: str = ALICE) -> ReadTracker:
        with ReadTracker() as tracker:
            await cache.get(principal, Family.BOOT_RESOURCES, "all", Loader())
            await cache.get(principal, Family.BOOT_RESOURCE, 1, Loader(), scope=1)
        return tracker

    async def test_get_returns_stored_body(
        self, cache: EntityCache, responses: ResponseCache
    ) -> None:
        key = response_key("{ bootResources { name } }")

        stored = responses.set(ALICE, key, b'{"data":{}}', await self.build(cache))

        assert stored
        assert responses.get(ALICE, key) == b'{"data":{}}'
        assert responses.get(BOB, key) is None

    async def test_get_misses_after_invalidation_of_a_family_it_read(
        self, cache: EntityCache, responses: ResponseCache
    ) -> None:
        responses.set(ALICE, "q", b"body", await self.build(cache))

        cache.invalidate(Family.BOOT_RESOURCES)

        assert responses.get(ALICE, "q") is None
        assert responses.stats()["invalidated"] == 1

    async def test_get_misses_after_invalidation_of_a_scope_it_read(
        self, cache: EntityCache, responses: ResponseCache
    ) -> None:
        responses.set(ALICE, "q", b"body", await self.build(cache))

        cache.invalidate(Family.BOOT_RESOURCE, scope=1)

        assert responses.get(ALICE, "q") is None

    async def test_get_hits_after_invalidation_of_something_it_did_not_read(
        self, cache: EntityCache, responses: ResponseCache
    ) -> None:
        responses.set(ALICE, "q", b"body", await self.build(cache))

        cache.invalidate(Family.BOOT_RESOURCE, scope=2)
        cache.invalidate(Family.SELECTIONS)

        assert responses.get(ALICE, "q") == b"body"

    async def test_get_misses_when_ttl_passed(self, cache: EntityCache, clock: FakeClock) -> None:
        responses = ResponseCache(cache, ttl=5)
        responses.set(ALICE, "q", b"body", await self.build(cache))

        clock.advance(5)

        assert responses.get(ALICE, "q") is None
        assert responses.stats()["expired"] == 1

    async def test_get_misses_when_an_entry_it_read_expired(
        self, cache: EntityCache, clock: FakeClock, responses: ResponseCache
    ) -> None:
        responses.set(ALICE, "q", b"body", await self.build(cache))

        clock.advance(10)  # the entities' ttl, shorter than the response cache's 30

        assert responses.get(ALICE, "q") is None

    async def test_set_refuses_response_built_from_stale_read(
        self, cache: EntityCache, clock: FakeClock, responses: ResponseCache
    ) -> None:
        await cache.get(ALICE, Family.BOOT_SOURCES, "all", Loader())
        clock.advance(11)
        with ReadTracker() as tracker:
            await cache.get(
                ALICE, Family.BOOT_SOURCES, "all", Loader(error=UpstreamUnavailable("down"))
            )

        assert not responses.set(ALICE, "q", b"body", tracker)
        assert responses.get(ALICE, "q") is None
        assert responses.stats()["refused"] == 1

    async def test_set_refuses_response_whose_reads_changed_before_storing(
        self, cache: EntityCache, responses: ResponseCache
    ) -> None:
        tracker = await self.build(cache)
        cache.invalidate(Family.BOOT_RESOURCE, scope=1)

        assert not responses.set(ALICE, "q", b"body", tracker)
        assert responses.lookup(ALICE, "q") is None
        assert responses.stats()["refused"] == 1

    async def test_entry_and_byte_bounds_evict_least_recently_used(
        self, cache: EntityCache
    ) -> None:
        responses = ResponseCache(cache, ttl=30, maxsize=2, max_bytes=10)
        tracker = ReadTracker()
        responses.set(ALICE, "a", b"aaaa", tracker)
        responses.set(ALICE, "b", b"bbbb", tracker)
        responses.get(ALICE, "a")

        responses.set(ALICE, "c", b"cccc", tracker)

        assert [responses.get(ALICE, k) for k in ("a", "b", "c")] == [b"aaaa", None, b"cccc"]
        assert not responses.set(ALICE, "huge", b"x" * 11, tracker)
        stats = responses.stats()
        assert (stats["evictions"], stats["size"], stats["bytes"]) == (1, 2, 8)

    async def test_clear_drops_every_response(
        self, cache: EntityCache, responses: ResponseCache
    ) -> None:
        responses.set(ALICE, "q", b"body", ReadTracker())

        responses.clear()

        assert responses.get(ALICE, "q") is None
        assert responses.stats()["bytes"] == 0

    async def test_set_refuses_response_built_from_a_failed_read_with_fresh_others(
        self, cache: EntityCache, responses: ResponseCache
    ) -> None:
        with ReadTracker() as tracker:
            await cache.get(ALICE, Family.BOOT_RESOURCES, "all", Loader())
            with pytest.raises(NotFound):
                await cache.get(ALICE, Family.BOOT_RESOURCE, 9, Loader(error=NotFound("?")))

        assert tracker.expires_at > cache.clock()  # only the failure makes it unfit to keep
        assert not responses.set(ALICE, "q", b"partial", tracker)
        assert responses.lookup(ALICE, "q") is None

    async def test_lookup_returns_the_headers_stored_with_the_body(
        self, cache: EntityCache, responses: ResponseCache
    ) -> None:
        headers = ((b"etag", b'"abc"'), (b"content-type", b"application/json"))
        assert responses.set(ALICE, "q", b"body", await self.build(cache), headers)

        stored = responses.lookup(ALICE, "q")

        assert stored is not None
        assert (stored.body, stored.headers) == (b"body", headers)

    async def test_a_ttl_of_zero_stores_nothing(self, cache: EntityCache) -> None:
        responses = ResponseCache(cache, ttl=0)

        assert not responses.set(ALICE, "q", b"body", ReadTracker())
        assert responses.stats()["refused"] == 1

    async def test_bodies_up_to_the_byte_bound_are_kept(self, cache: EntityCache) -> None:
        responses = ResponseCache(cache, ttl=30, max_bytes=10)

        assert responses.set(ALICE, "a", b"a" * 6, ReadTracker())
        assert responses.set(ALICE, "b", b"b" * 4, ReadTracker())
        assert [responses.get(ALICE, k) for k in ("a", "b")] == [b"a" * 6, b"b" * 4]
        assert responses.set(ALICE, "ten", b"t" * 10, ReadTracker())
        assert responses.stats()["bytes"] == 10
        assert (responses.get(ALICE, "a"), responses.get(ALICE, "b")) == (None, None)

    async def test_the_entry_bound_evicts_with_bytes_to_spare(self, cache: EntityCache) -> None:
        responses = ResponseCache(cache, ttl=30, maxsize=2)
        for key in ("a", "b", "c"):
            responses.set(ALICE, key, b"x", ReadTracker())

        assert [responses.get(ALICE, k) for k in ("a", "b", "c")] == [None, b"x", b"x"]
        assert responses.stats()["evictions"] == 1

    async def test_the_default_bound_is_a_thousand_responses(self, cache: EntityCache) -> None:
        responses = ResponseCache(cache, ttl=30)
        for key in range(1_001):
            responses.set(ALICE, key, b"x", ReadTracker())

        assert (responses.stats()["size"], responses.stats()["evictions"]) == (1_000, 1)
        assert responses.get(ALICE, 0) is None

    async def test_bytes_follow_replacements_expiries_and_invalidations(
        self, cache: EntityCache, clock: FakeClock
    ) -> None:
        responses = ResponseCache(cache, ttl=5, max_bytes=100)
        responses.set(ALICE, "q", b"x" * 40, ReadTracker())
        responses.set(ALICE, "q", b"x" * 30, ReadTracker())  # replaced, not added
        responses.set(ALICE, "r", b"y" * 50, await self.build(cache))
        assert (responses.stats()["size"], responses.stats()["bytes"]) == (2, 80)

        cache.invalidate(Family.BOOT_RESOURCES)
        assert responses.get(ALICE, "r") is None
        assert (responses.stats()["size"], responses.stats()["bytes"]) == (1, 30)
        clock.advance(5)
        assert responses.get(ALICE, "q") is None
        assert (responses.stats()["size"], responses.stats()["bytes"]) == (0, 0)

    async def test_stats_count_each_lookup_once(self, cache: EntityCache, clock: FakeClock) -> None:
        responses = ResponseCache(cache, ttl=5, maxsize=1)
        for key in ("gone", "q"):
            responses.set(ALICE, key, b"body", await self.build(cache))
        for _ in range(2):
            responses.get(ALICE, "q")
            responses.get(ALICE, "never stored")
        responses.set(BOB, "r", b"body", await self.build(cache, BOB))
        for key in ("s", "s2"):
            responses.set(BOB, key, b"body", await self.build(cache, BOB))
            cache.invalidate(Family.BOOT_RESOURCE, scope=1)
            responses.get(BOB, key)
        for key in ("t", "t2"):
            responses.set(ALICE, key, b"body", ReadTracker())
            clock.advance(5)
            responses.get(ALICE, key)
        tracker = await self.build(cache)
        cache.invalidate(Family.BOOT_RESOURCES)
        for _ in range(2):
            responses.set(ALICE, "u", b"body", tracker)

        assert responses.stats() == {
            "hits": 2,
            "misses": 6,
            "expired": 2,
            "invalidated": 2,
            "evictions": 3,
            "refused": 2,
            "size": 0,
            "bytes": 0,
        }

    @pytest.mark.parametrize(
        "bounds", [{"ttl": -1}, {"ttl": 1, "maxsize": 0}, {"ttl": 1, "max_bytes": 0}]
    )
    def test_refuses_a_negative_ttl_or_bounds_below_one(
        self, cache: EntityCache, bounds: dict[str, float]
    ) -> None:
        with pytest.raises(ValueError, match=r"^ttl must be >= 0, maxsize and max_bytes >= 1$"):
            ResponseCache(cache, **bounds)  # type: ignore[arg-type]

    async def test_takes_a_short_ttl_and_bounds_of_one(self, cache: EntityCache) -> None:
        short = ResponseCache(cache, ttl=0.5, maxsize=1, max_bytes=1)
        assert short.set(ALICE, "q", b"x", ReadTracker())
        assert short.get(ALICE, "q") == b"x"


class TestHelpers:
    def test_response_key_ignores_variable_order(self) -> None:
        assert response_key("q", {"a": 1, "b": 2}) == response_key("q", {"b": 2, "a": 1})

    def test_response_key_differs_by_document_variables_and_operation(self) -> None:
        keys = {
            response_key("q"),
            response_key("q2"),
            response_key("q", {"a": 1}),
            response_key("q", operation_name="Op"),
        }
        assert len(keys) == 4
        assert response_key("q", None) == response_key(b"q", {})

    def test_estimate_size_grows_with_content(self) -> None:
        small = [{"name": "x", "id": i} for i in range(10)]
        large = [{"name": "x" * 100, "id": i} for i in range(1_000)]

        assert estimate_size(large) > 50 * estimate_size(small)
        assert estimate_size(b"x" * 1000) >= 1000
