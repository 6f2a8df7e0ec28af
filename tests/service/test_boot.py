"""The service over the real simulator: principals never share answers, writes invalidate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.cache import EntityCache, Family
from app.cli.server import BackgroundServer
from app.core.errors import Forbidden
from app.core.settings import Settings
from app.maas.auth import MaasCredentials
from app.maas.client import MaasClient
from app.service import BootService, Caller, cache_policies
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
