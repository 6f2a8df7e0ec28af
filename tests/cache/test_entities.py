"""Tests of the entity cache, the read tracker and the response cache."""

from __future__ import annotations

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
