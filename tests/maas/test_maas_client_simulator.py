"""MaasClient against the MAAS simulator over a real socket: every call, errors, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from maas_support import ADMIN_KEY, USER_KEY, SimulatorControl

from app.cli.server import BackgroundServer
from app.core.errors import (
    Forbidden,
    NotFound,
    Unauthenticated,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationFailed,
)
from app.maas import MaasClient, MaasCredentials
from app.simulator import SimulatorConfig, create_simulator

pytestmark = pytest.mark.anyio

DEFAULT_SOURCE = 1
COMMISSIONING_SELECTION = 1


@pytest.fixture
def sim(simulator: BackgroundServer) -> SimulatorControl:
    return SimulatorControl(simulator.url)


@pytest.fixture
async def maas(sim: SimulatorControl) -> AsyncIterator[MaasClient]:
    async with MaasClient(
        sim.maas_url, MaasCredentials.from_key(ADMIN_KEY), retries=2, retry_backoff=0.01
    ) as client:
        yield client


# Boot resources --------------------------------------------------------------------------------


async def test_list_and_read_boot_resources(maas: MaasClient) -> None:
    listing = await maas.list_boot_resources()
    detail = await maas.get_boot_resource(listing[0].id)

    assert {r.type for r in listing} == {"Synced", "Uploaded"}
    assert all(r.sets is None for r in listing)
    assert detail.id == listing[0].id
    assert detail.sets
    newest = detail.newest_set
    assert newest is not None
    assert newest.files


async def test_list_filtered_by_type(maas: MaasClient) -> None:
    uploaded = await maas.list_boot_resources("uploaded")

    assert uploaded
    assert {r.type for r in uploaded} == {"Uploaded"}


async def test_list_with_an_unknown_type_is_a_validation_error(maas: MaasClient) -> None:
    with pytest.raises(ValidationFailed, match="'bogus' is not a valid boot resource type"):
        await maas.list_boot_resources("bogus")


async def test_read_of_a_missing_resource_is_not_found(maas: MaasClient) -> None:
    with pytest.raises(NotFound) as caught:
        await maas.get_boot_resource(9999)

    assert caught.value.message == (
        "MAAS boot-resource read failed (HTTP 404): No BootResource matches the given query."
    )


async def test_delete_removes_a_resource_and_a_second_delete_is_not_found(
    maas: MaasClient,
) -> None:
    victim = (await maas.list_boot_resources("uploaded"))[0]

    await maas.delete_boot_resource(victim.id)

    with pytest.raises(NotFound):
        await maas.get_boot_resource(victim.id)
    # MAAS answers this one with a 500 (maas-api.md §5.6); the client maps it.
    with pytest.raises(NotFound, match="boot-resource delete failed"):
        await maas.delete_boot_resource(victim.id)


async def test_create_with_an_unusable_architecture_reports_the_field(maas: MaasClient) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await maas.create_boot_resource("custom-x", "mips/generic", "a" * 64, 100)

    assert list(caught.value.fields) == ["architecture"]
    assert "'mips/generic' is not a valid architecture" in caught.value.fields["architecture"][0]


async def test_import_starts_reports_and_stops(maas: MaasClient) -> None:
    assert await maas.is_importing() is False

    await maas.start_import()
    assert await maas.is_importing() is True
    await maas.stop_import()

    with anyio.fail_after(5):
        while await maas.is_importing():
            await anyio.sleep(0.05)


# Boot sources ----------------------------------------------------------------------------------


async def test_boot_source_round_trip_with_keyring_bytes(maas: MaasClient) -> None:
    keyring = b"\x99\x01\x0d\x04binary-keyring\x00\xff"

    created = await maas.create_boot_source("http://mirror.test/stable/", keyring_data=keyring)
    listed = await maas.list_boot_sources()
    read = await maas.get_boot_source(created.id)
    await maas.delete_boot_source(created.id)

    assert created.keyring_bytes() == keyring
    assert created.keyring_filename == ""
    assert read == created
    assert created.id in {s.id for s in listed}
    assert created.created is not None
    assert created.created.tzinfo is not None
    with pytest.raises(NotFound):
        await maas.get_boot_source(created.id)


async def test_boot_source_update_changes_only_what_is_given(maas: MaasClient) -> None:
    created = await maas.create_boot_source(
        "http://mirror.test/a/", keyring_filename="/etc/keyrings/a.gpg"
    )

    updated = await maas.update_boot_source(created.id, url="http://mirror.test/b/")

    assert updated.url == "http://mirror.test/b/"
    assert updated.keyring_filename == "/etc/keyrings/a.gpg"


async def test_boot_source_without_a_keyring_fails_validation(maas: MaasClient) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await maas.create_boot_source("http://mirror.test/none/")

    assert caught.value.fields == {
        "__all__": ["One of keyring_data or keyring_filename must be specified."]
    }


async def test_boot_sources_are_forbidden_to_a_non_admin(maas: MaasClient) -> None:
    user = maas.bind(MaasCredentials.from_key(USER_KEY))

    assert await user.list_boot_resources()
    with pytest.raises(Forbidden, match="User is not allowed access to this API"):
        await user.list_boot_sources()


async def test_an_unknown_key_is_unauthenticated(sim: SimulatorControl) -> None:
    stranger = MaasCredentials.from_key(f"{'a' * 18}:{'b' * 18}:{'c' * 32}")

    async with MaasClient(sim.maas_url, stranger) as maas:
        with pytest.raises(Unauthenticated) as caught:
            await maas.list_boot_resources()

    assert stranger.token_secret not in caught.value.message


# Boot source selections -------------------------------------------------------------------------


async def test_selection_round_trip(maas: MaasClient) -> None:
    created = await maas.create_boot_source_selection(
        DEFAULT_SOURCE, os="ubuntu", release="focal", arches=["amd64", "arm64"], labels=["*"]
    )
    read = await maas.get_boot_source_selection(DEFAULT_SOURCE, created.id)
    updated = await maas.update_boot_source_selection(DEFAULT_SOURCE, created.id, arches=["amd64"])
    listed = await maas.list_boot_source_selections(DEFAULT_SOURCE)
    await maas.delete_boot_source_selection(DEFAULT_SOURCE, created.id)

    assert (created.os, created.release, created.arches) == ("ubuntu", "focal", ["amd64", "arm64"])
    assert created.boot_source_id == DEFAULT_SOURCE
    assert read == created
    assert updated.arches == ["amd64"]
    assert updated.labels == ["*"]
    assert created.id in {s.id for s in listed}
    with pytest.raises(NotFound):
        await maas.get_boot_source_selection(DEFAULT_SOURCE, created.id)


async def test_selection_for_a_release_the_source_lacks_reports_the_field(
    maas: MaasClient,
) -> None:
    source = await maas.create_boot_source("http://mirror.test/s/", keyring_filename="/k.gpg")

    with pytest.raises(ValidationFailed) as caught:
        await maas.create_boot_source_selection(source.id, os="ubuntu", release="jammy")

    assert caught.value.fields == {
        "os": ["OS ubuntu with release jammy has no available images for download"]
    }


async def test_deleting_the_commissioning_selection_is_refused(maas: MaasClient) -> None:
    with pytest.raises(ValidationFailed, match="used for commissioning"):
        await maas.delete_boot_source_selection(DEFAULT_SOURCE, COMMISSIONING_SELECTION)


# Discovery -------------------------------------------------------------------------------------


async def test_version_and_describe(maas: MaasClient) -> None:
    version = await maas.version()
    description = await maas.describe()

    assert "authenticate-api" in version.capabilities
    assert version.version
    names = {resource["name"] for resource in description.resources}
    assert {"BootResourcesHandler", "BootSourceSelectionHandler"} <= names


# Retries, faults and timeouts -------------------------------------------------------------------


async def test_get_is_retried_through_503s(maas: MaasClient, sim: SimulatorControl) -> None:
    sim.faults({"path": "/boot-resources/$", "method": "GET", "status": 503, "times": 2})

    assert await maas.list_boot_resources()
    assert sim.count("GET", "/boot-resources/$") == 3


async def test_get_that_stays_unavailable_fails_fast_with_retry_after(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    sim.faults({"path": "/boot-resources/$", "method": "GET", "status": 503})

    with anyio.fail_after(2):  # the short backoff, not MAAS's Retry-After: 10 per attempt
        with pytest.raises(UpstreamUnavailable) as caught:
            await maas.list_boot_resources()

    assert caught.value.retry_after == 10.0
    assert sim.count("GET", "/boot-resources/$") == 3


async def test_get_is_retried_after_a_dropped_connection(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    sim.faults({"path": "/boot-sources/$", "method": "GET", "drop": True, "times": 1})

    assert await maas.list_boot_sources()
    assert sim.count("GET", "/boot-sources/$") == 2


async def test_post_is_not_retried_on_503(maas: MaasClient, sim: SimulatorControl) -> None:
    sim.faults({"path": "/boot-sources/$", "method": "POST", "status": 503, "times": 1})

    with pytest.raises(UpstreamUnavailable, match=r"boot-sources create failed \(HTTP 503\)"):
        await maas.create_boot_source("http://mirror.test/r/", keyring_filename="/k.gpg")

    assert sim.count("POST", "/boot-sources/$") == 1


async def test_post_is_not_retried_after_a_dropped_connection(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    sim.faults({"path": "/boot-resources/$", "method": "POST", "drop": True, "times": 1})

    with pytest.raises(UpstreamBadResponse, match="connection dropped"):
        await maas.start_import()

    assert sim.count("POST", "/boot-resources/$") == 1


async def test_malformed_json_is_a_bad_response(maas: MaasClient, sim: SimulatorControl) -> None:
    sim.faults({"path": "/boot-resources/$", "method": "GET", "malformed": True})

    with pytest.raises(UpstreamBadResponse, match="boot-resources read failed"):
        await maas.list_boot_resources()


async def test_a_hung_upstream_times_out(sim: SimulatorControl) -> None:
    sim.faults({"path": "/boot-resources/$", "method": "GET", "hang": True})

    async with MaasClient(sim.maas_url, MaasCredentials.from_key(ADMIN_KEY), timeout=0.3) as maas:
        with pytest.raises(UpstreamTimeout, match="timed out waiting for the response"):
            await maas.list_boot_resources()

    assert sim.count("GET", "/boot-resources/$") == 1


async def test_an_unreachable_upstream_is_unavailable() -> None:
    async with MaasClient(
        "http://127.0.0.1:9/MAAS", MaasCredentials.from_key(ADMIN_KEY), retry_backoff=0.001
    ) as maas:
        with pytest.raises(UpstreamUnavailable, match="could not connect"):
            await maas.list_boot_resources()


# Every supported MAAS era parses ----------------------------------------------------------------


@pytest.fixture(params=["2.9", "3.3", "3.6", "3.8"])
def era_simulator(request: pytest.FixtureRequest) -> Iterator[str]:
    config = SimulatorConfig(
        admin_key=ADMIN_KEY, user_key=USER_KEY, seed=3, maas_version=request.param
    )
    with BackgroundServer(create_simulator(config)) as server:
        yield f"{server.url}/MAAS"


async def test_every_payload_parses_on_every_maas_era(era_simulator: str) -> None:
    async with MaasClient(era_simulator, MaasCredentials.from_key(ADMIN_KEY)) as maas:
        listing = await maas.list_boot_resources()
        details = [await maas.get_boot_resource(r.id) for r in listing]
        sources = await maas.list_boot_sources()
        selections = await maas.list_boot_source_selections(sources[0].id)

    assert all(d.sets for d in details)
    assert all(s.created is not None and s.created.tzinfo is not None for s in sources)
    assert selections
