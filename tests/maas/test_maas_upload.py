"""The chunked upload against the simulator: happy path, and cleanup on every failure (§5.5)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import anyio
import pytest
from maas_support import ADMIN_KEY, SimulatorControl

from app.cli.server import BackgroundServer
from app.core.errors import NotFound, UpstreamBadResponse, UpstreamUnavailable, ValidationFailed
from app.maas import MaasClient, MaasCredentials
from app.maas.models import BootResource

pytestmark = pytest.mark.anyio

CHUNK = 64 * 1024
CONTENT = bytes(range(256)) * 1200  # 307,200 bytes: four full chunks and a short fifth
SHA256 = hashlib.sha256(CONTENT).hexdigest()
ARCH = "amd64/generic"
UPLOADS = r"/boot-resources/\d+/upload/\d+/$"


@pytest.fixture
def sim(simulator: BackgroundServer) -> SimulatorControl:
    return SimulatorControl(simulator.url)


@pytest.fixture
async def maas(sim: SimulatorControl) -> AsyncIterator[MaasClient]:
    async with MaasClient(
        sim.maas_url, MaasCredentials.from_key(ADMIN_KEY), chunk_size=CHUNK, retry_backoff=0.01
    ) as client:
        yield client


async def stream(data: bytes, piece: int = 10_000) -> AsyncIterator[bytes]:
    """The bytes in pieces that do not line up with the chunk size, as a request body would."""
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def failing_stream(data: bytes, fail_after: int) -> AsyncIterator[bytes]:
    async for piece in stream(data[:fail_after]):
        yield piece
    raise OSError("the caller's connection broke")


async def resources_named(maas: MaasClient, name: str) -> list[BootResource]:
    return [r for r in await maas.list_boot_resources() if r.name == name]


async def test_upload_streams_sequential_chunks_and_returns_the_complete_resource(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    uploaded = await maas.upload_boot_resource(
        "custom-alma", ARCH, stream(CONTENT), len(CONTENT), SHA256, title="Alma"
    )

    newest = uploaded.newest_set
    assert newest is not None
    (file,) = newest.files.values()
    assert newest.complete
    assert (file.complete, file.size, file.sha256) == (True, len(CONTENT), SHA256)
    assert uploaded.title == "Alma"
    # Five PUTs (4 x 64 KiB + 45,056 bytes), each freshly signed: MAAS rejects a reused nonce.
    assert sim.count("PUT", UPLOADS) == 5
    assert sim.count("POST", "/boot-resources/$") == 1


async def test_upload_of_content_maas_already_has_is_sent_again_from_3_5(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    await maas.upload_boot_resource("custom-one", ARCH, stream(CONTENT), len(CONTENT), SHA256)

    again = await maas.upload_boot_resource(
        "custom-two", ARCH, stream(CONTENT), len(CONTENT), SHA256
    )

    newest = again.newest_set
    assert newest is not None
    assert newest.complete
    assert sim.count("PUT", UPLOADS) == 10  # 3.5 stores files apart (maas-api.md §0)


async def test_upload_of_content_maas_already_has_sends_no_chunks_up_to_3_4() -> None:
    from app.simulator import SimulatorConfig, create_simulator

    config = SimulatorConfig(admin_key=ADMIN_KEY, seed=1, maas_version="3.4")
    with BackgroundServer(create_simulator(config)) as server:
        sim = SimulatorControl(server.url)
        credentials = MaasCredentials.from_key(ADMIN_KEY)
        async with MaasClient(sim.maas_url, credentials, chunk_size=CHUNK) as maas:
            await maas.upload_boot_resource("one", ARCH, stream(CONTENT), len(CONTENT), SHA256)
            again = await maas.upload_boot_resource(
                "two", ARCH, stream(CONTENT), len(CONTENT), SHA256
            )
        assert again.newest_set is not None and again.newest_set.complete
        assert sim.count("PUT", UPLOADS) == 5  # the second shares the stored large object


async def test_sha256_mismatch_withholds_the_last_chunk_and_deletes_the_resource(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    other = hashlib.sha256(b"something else").hexdigest()

    with pytest.raises(ValidationFailed) as caught:
        await maas.upload_boot_resource("custom-bad", ARCH, stream(CONTENT), len(CONTENT), other)

    assert list(caught.value.fields) == ["sha256"]
    assert sim.count("PUT", UPLOADS) == 4
    assert sim.count("DELETE", r"/boot-resources/\d+/$") == 1
    assert await resources_named(maas, "custom-bad") == []


async def test_stream_shorter_than_declared_deletes_the_resource(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    short = CONTENT[:250_000]

    with pytest.raises(ValidationFailed, match="250000 bytes, not the declared 307200"):
        await maas.upload_boot_resource("custom-short", ARCH, stream(short), len(CONTENT), SHA256)

    assert sim.count("PUT", UPLOADS) == 3
    assert await resources_named(maas, "custom-short") == []


async def test_stream_longer_than_declared_stops_at_the_excess(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    longer = CONTENT + b"extra bytes"

    with pytest.raises(ValidationFailed) as caught:
        await maas.upload_boot_resource("custom-long", ARCH, stream(longer), len(CONTENT), SHA256)

    assert list(caught.value.fields) == ["size"]
    assert sim.count("PUT", UPLOADS) == 4
    assert await resources_named(maas, "custom-long") == []


async def test_stream_error_is_reraised_and_the_resource_deleted(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    with pytest.raises(OSError, match="connection broke"):
        await maas.upload_boot_resource(
            "custom-broken", ARCH, failing_stream(CONTENT, 150_000), len(CONTENT), SHA256
        )

    assert sim.count("PUT", UPLOADS) == 2
    assert await resources_named(maas, "custom-broken") == []


async def test_maas_dropping_a_chunk_deletes_the_resource_without_resending(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    sim.faults({"path": UPLOADS, "method": "PUT", "drop": True, "times": 1})

    with pytest.raises(UpstreamBadResponse, match="boot-resource upload failed"):
        await maas.upload_boot_resource("custom-drop", ARCH, stream(CONTENT), len(CONTENT), SHA256)

    assert sim.count("PUT", UPLOADS) == 1
    assert await resources_named(maas, "custom-drop") == []


async def test_maas_error_on_a_chunk_deletes_the_resource_without_retrying(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    sim.faults({"path": UPLOADS, "method": "PUT", "status": 503})

    with pytest.raises(UpstreamUnavailable):
        await maas.upload_boot_resource("custom-503", ARCH, stream(CONTENT), len(CONTENT), SHA256)

    assert sim.count("PUT", UPLOADS) == 1
    assert await resources_named(maas, "custom-503") == []


async def test_cancelled_upload_still_deletes_the_resource(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    sim.faults({"path": UPLOADS, "method": "PUT", "hang": True})

    with anyio.move_on_after(0.5) as scope:
        await maas.upload_boot_resource(
            "custom-cancel", ARCH, stream(CONTENT), len(CONTENT), SHA256
        )

    assert scope.cancelled_caught
    sim.faults()
    assert await resources_named(maas, "custom-cancel") == []


async def test_failed_new_version_of_an_existing_resource_keeps_the_resource(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    first = await maas.upload_boot_resource(
        "custom-kept", ARCH, stream(CONTENT), len(CONTENT), SHA256
    )
    declared = hashlib.sha256(CONTENT[::-1]).hexdigest()

    with pytest.raises(ValidationFailed):
        await maas.upload_boot_resource(
            "custom-kept", ARCH, stream(CONTENT), len(CONTENT), declared
        )

    assert (await maas.get_boot_resource(first.id)).id == first.id
    assert sim.count("DELETE", r"/boot-resources/\d+/$") == 0


@pytest.mark.parametrize(
    ("size", "sha256", "field"),
    [(0, SHA256, "size"), (-5, SHA256, "size"), (10, "abc", "sha256"), (10, "z" * 64, "sha256")],
)
async def test_bad_size_or_sha256_is_refused_before_creating_anything(
    maas: MaasClient, sim: SimulatorControl, size: int, sha256: str, field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await maas.upload_boot_resource("custom-x", ARCH, stream(CONTENT), size, sha256)

    assert list(caught.value.fields) == [field]
    assert sim.count("POST", "/boot-resources/$") == 0


async def test_upload_of_an_exact_multiple_of_the_chunk_size(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    data = CONTENT[: 3 * CHUNK]

    uploaded = await maas.upload_boot_resource(
        "custom-even", ARCH, stream(data), len(data), hashlib.sha256(data).hexdigest()
    )

    newest = uploaded.newest_set
    assert newest is not None
    assert newest.complete
    assert sim.count("PUT", UPLOADS) == 3


async def test_cleanup_that_finds_the_resource_gone_is_quiet(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    # The resource vanishes mid-upload (another admin deleted it): the chunk 404s, the
    # cleanup's DELETE finds nothing, and the caller sees the upload's own error.
    async def vanishing(data: bytes) -> AsyncIterator[bytes]:
        async for piece in stream(data):
            for resource in await resources_named(maas, "custom-gone"):
                await maas.delete_boot_resource(resource.id)
            yield piece

    with pytest.raises(NotFound, match="boot-resource upload failed"):
        await maas.upload_boot_resource(
            "custom-gone", ARCH, vanishing(CONTENT), len(CONTENT), SHA256
        )


async def test_task_cancelled_by_asyncio_still_deletes_the_resource(
    maas: MaasClient, sim: SimulatorControl
) -> None:
    sim.faults({"path": UPLOADS, "method": "PUT", "hang": True})
    upload = asyncio.ensure_future(
        maas.upload_boot_resource("custom-task", ARCH, stream(CONTENT), len(CONTENT), SHA256)
    )
    with anyio.fail_after(5):
        while sim.count("PUT", UPLOADS) == 0:
            await anyio.sleep(0.02)

    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload

    sim.faults()
    assert await resources_named(maas, "custom-task") == []


async def test_upload_with_the_default_4_mib_chunks(sim: SimulatorControl) -> None:
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB: two full 4 MiB chunks and a 1 MiB tail

    async with MaasClient(sim.maas_url, MaasCredentials.from_key(ADMIN_KEY)) as maas:
        uploaded = await maas.upload_boot_resource(
            "custom-big", ARCH, stream(data, 1 << 20), len(data), hashlib.sha256(data).hexdigest()
        )

    newest = uploaded.newest_set
    assert newest is not None
    assert newest.complete
    assert sim.count("PUT", UPLOADS) == 3
