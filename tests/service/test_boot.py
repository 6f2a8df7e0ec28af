"""The service over the real simulator: principals never share answers, writes invalidate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
import pytest

from app.cache import CachePolicy, EntityCache, Family, ReadTracker
from app.cli.server import BackgroundServer
from app.core.errors import Forbidden
from app.core.settings import Settings
from app.maas.auth import MaasCredentials
from app.maas.client import MaasClient
from app.service import BootService, Caller, cache_policies
from app.service.boot import RESOURCE_FAMILIES
from tests.conftest import ADMIN_KEY, USER_KEY
from tests.gateway import reset_counts, upstream_counts

pytestmark = pytest.mark.anyio


@pytest.fixture
async def parts(simulator: BackgroundServer) -> AsyncIterator[tuple[BootService, Caller, Caller]]:
    settings = Settings(maas_url=f"{simulator.url}/MAAS", maas_api_key=ADMIN_KEY)
    cache = EntityCache(cache_policies(settings))
    service = BootService(cache, settings)
    admin_credentials = MaasCredentials.from_key(ADMIN_KEY)
    user_credentials = MaasCredentials.from_key(USER_KEY)
    async with MaasClient.from_settings(settings, admin_credentials) as maas:
        admin = Caller(admin_credentials.fingerprint, maas)
        user = Caller(user_credentials.fingerprint, maas.bind(user_credentials))
        yield service, admin, user


async def test_principals_never_see_each_others_answers_under_concurrency(
    parts: tuple[BootService, Caller, Caller],
) -> None:
    service, admin, user = parts

    async def as_admin() -> int:
        return len(await service.list_boot_sources(admin))

    async def as_user() -> str:
        try:
            await service.list_boot_sources(user)
        except Forbidden:
            return "forbidden"
        return "leaked"

    for _ in range(3):
        results = await asyncio.gather(
            *(as_admin() for _ in range(10)), *(as_user() for _ in range(10))
        )
        assert all(isinstance(r, int) and r > 0 for r in results[:10])
        assert results[10:] == ["forbidden"] * 10
        service.cache.invalidate(Family.BOOT_SOURCES)


async def test_entries_are_partitioned_by_principal(
    parts: tuple[BootService, Caller, Caller], simulator: BackgroundServer
) -> None:
    service, admin, user = parts
    await service.list_boot_resources(admin)
    reset_counts(simulator.url)
    await service.list_boot_resources(user)
    counts = upstream_counts(simulator.url)
    assert counts == {"GET /MAAS/api/2.0/boot-resources/": 1}
    await service.list_boot_resources(admin)
    await service.list_boot_resources(user)
    counts = upstream_counts(simulator.url)
    assert counts == {"GET /MAAS/api/2.0/boot-resources/": 1}


async def test_a_write_invalidates_for_every_principal(
    parts: tuple[BootService, Caller, Caller],
) -> None:
    service, admin, user = parts
    before_admin = await service.list_boot_resources(admin)
    before_user = await service.list_boot_resources(user)
    victim = next(r for r in before_admin if r.type.value == "UPLOADED")
    await service.delete_boot_resource(admin, victim.id)
    after_admin = await service.list_boot_resources(admin)
    after_user = await service.list_boot_resources(user)
    assert victim.id in {r.id for r in before_user}
    assert victim.id not in {r.id for r in after_admin}
    assert victim.id not in {r.id for r in after_user}


# Invalidation: what each write drops, and what it keeps -----------------------------------------


# The settings `parts` builds its service with.
DEFAULTS = Settings(maas_url="http://127.0.0.1:9/MAAS", maas_api_key=ADMIN_KEY)


def held(service: BootService, caller: Caller, family: Family, key: object, scope: object) -> bool:
    """Whether the entry is fresh in the cache (a peek counts as a hit, nothing is loaded)."""
    return service.cache.peek(caller.principal, family, key, scope=scope) is not None


async def test_deleting_a_resource_drops_its_detail_the_lists_and_import_status_only(
    parts: tuple[BootService, Caller, Caller],
) -> None:
    service, admin, _ = parts
    resources = await service.list_boot_resources_detailed(admin)
    victim = next(r for r in resources if r.type.value == "UPLOADED")
    kept = next(r for r in resources if r.id != victim.id)
    await service.is_importing(admin)
    await service.list_boot_sources(admin)

    await service.delete_boot_resource(admin, victim.id)

    assert not held(service, admin, Family.BOOT_RESOURCE, victim.id, victim.id)
    assert held(service, admin, Family.BOOT_RESOURCE, kept.id, kept.id)
    assert not held(service, admin, Family.BOOT_RESOURCES, ("list", None), None)
    assert not held(service, admin, Family.IMPORT_STATUS, "is_importing", None)
    assert held(service, admin, Family.BOOT_SOURCES, "list", None)


async def test_updating_or_deleting_a_source_drops_it_and_the_list_not_other_sources(
    parts: tuple[BootService, Caller, Caller],
) -> None:
    service, admin, _ = parts
    first = (await service.list_boot_sources(admin))[0]
    other = await service.create_boot_source(
        admin, url="http://images.example/ephemeral-v3/stable/", keyring_filename="/k.gpg"
    )
    for source in (first, other):
        await service.get_boot_source(admin, source.id)
        await service.list_selections(admin, source.id)
    await service.list_boot_sources(admin)

    await service.update_boot_source(admin, other.id, url="http://images.example/daily/")

    assert not held(service, admin, Family.BOOT_SOURCE, other.id, other.id)
    assert not held(service, admin, Family.BOOT_SOURCES, "list", None)
    assert held(service, admin, Family.BOOT_SOURCE, first.id, first.id)
    await service.delete_boot_source(admin, other.id)
    assert not held(service, admin, Family.SELECTIONS, "list", other.id)
    assert held(service, admin, Family.SELECTIONS, "list", first.id)
    assert held(service, admin, Family.BOOT_SOURCE, first.id, first.id)


async def test_an_import_drops_every_resource_answer_and_shortens_their_ttls_while_it_runs(
    parts: tuple[BootService, Caller, Caller],
) -> None:
    service, admin, _ = parts
    resources = await service.list_boot_resources_detailed(admin)
    await service.list_boot_sources(admin)

    await service.start_import(admin)

    assert not any(held(service, admin, Family.BOOT_RESOURCE, r.id, r.id) for r in resources)
    assert not held(service, admin, Family.BOOT_RESOURCES, ("list", None), None)
    assert held(service, admin, Family.BOOT_SOURCES, "list", None)
    importing = CachePolicy(DEFAULTS.cache_ttl_while_importing, DEFAULTS.cache_stale_ttl)
    for family in RESOURCE_FAMILIES:
        assert service.cache.policy(family) == importing
        assert service.ttl(family) == DEFAULTS.cache_ttl_while_importing
    assert service.ttl(Family.BOOT_SOURCES) == DEFAULTS.cache_ttl_boot_sources


async def test_entries_read_during_an_import_are_dropped_when_it_ends(
    parts: tuple[BootService, Caller, Caller],
) -> None:
    service, admin, _ = parts
    await service.start_import(admin)
    await service.list_boot_resources(admin)
    with anyio.fail_after(30):  # the simulator's import ends by itself
        while await admin.maas.is_importing():
            await anyio.sleep(0.05)
    assert held(service, admin, Family.BOOT_RESOURCES, ("list", None), None)

    assert await service.is_importing(admin) is False

    assert not held(service, admin, Family.BOOT_RESOURCES, ("list", None), None)
    policies = cache_policies(DEFAULTS)
    assert all(service.cache.policy(f) == policies[f] for f in RESOURCE_FAMILIES)


async def test_ttls_are_the_policies_under_the_cache_cap(
    parts: tuple[BootService, Caller, Caller],
) -> None:
    service, _, _ = parts
    ttls = (DEFAULTS.cache_ttl_boot_resources, DEFAULTS.cache_ttl_boot_resource)
    cap = (ttls[0] + ttls[1]) / 2  # between the two
    assert ttls[0] < ttls[1]

    before = [service.ttl(f) for f in (Family.BOOT_RESOURCES, Family.BOOT_RESOURCE)]
    service.cache.cap_ttls(cap)

    assert before == list(ttls)
    assert [service.ttl(f) for f in (Family.BOOT_RESOURCES, Family.BOOT_RESOURCE)] == [ttls[0], cap]


async def test_stored_responses_are_kept_per_principal_with_their_headers(
    parts: tuple[BootService, Caller, Caller],
) -> None:
    service, admin, user = parts
    with service.track_dependencies() as reads:
        await service.list_boot_sources(admin)
    headers = ((b"etag", b'"1"'),)

    assert service.store_response(admin, "q", b"answer", reads, headers)

    stored = service.stored_response(admin, "q")
    assert stored is not None
    assert (stored.body, stored.headers) == (b"answer", headers)
    assert service.stored_response(user, "q") is None
    assert service.stored_response(admin, "other") is None


async def test_nothing_is_stored_when_the_response_cache_is_off(
    simulator: BackgroundServer,
) -> None:
    settings = Settings(
        maas_url=f"{simulator.url}/MAAS", maas_api_key=ADMIN_KEY, response_cache_ttl=0
    )
    service = BootService(EntityCache(cache_policies(settings)), settings)
    caller = Caller("someone", None)  # type: ignore[arg-type]  # no MAAS call is made

    assert not service.store_response(caller, "q", b"answer", ReadTracker())
    assert service.stored_response(caller, "q") is None
