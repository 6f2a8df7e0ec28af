"""Canonical's own client, python-libmaas, against the simulator of every MAAS series it meets
in the field: it discovers the API from `describe/`, signs with PLAINTEXT OAuth, sends its own
multipart bodies and uploads through `upload_uri`. What it reads must be what MAAS holds."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

import pytest
from maas.client import connect
from maas.client.viscera.boot_resources import BootResourceFileType

from app.cli.server import BackgroundServer

from .helpers import Maas, keys

ServerFactory = Callable[..., BackgroundServer]
VERSIONS = ["2.9", "3.2", "3.4", "3.5", "3.6", "3.8"]


@pytest.fixture(autouse=True)
def event_loop() -> Iterator[None]:
    """python-libmaas runs each call on `asyncio.get_event_loop()`, which an earlier test's
    `asyncio.run` leaves unset in the main thread: give it a loop of its own."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


def libmaas(server: BackgroundServer) -> tuple[Any, Maas]:
    """python-libmaas signed with the admin key, and the suite's own client for the truth."""
    admin_key, _ = keys(server.url)
    return connect(f"{server.url}/MAAS/", apikey=admin_key), Maas(server.url, admin_key)


@pytest.mark.parametrize("version", VERSIONS)
def test_python_libmaas_reads_every_boot_resource_with_its_sets_and_files(
    simulator_for: ServerFactory, version: str
) -> None:
    client, truth = libmaas(simulator_for(maas_version=version))
    listed = client.boot_resources.list()
    expected = truth.get("/MAAS/api/2.0/boot-resources/").json()
    assert sorted((r.id, r.name, r.architecture) for r in listed) == sorted(
        (r["id"], r["name"], r["architecture"]) for r in expected
    )
    for resource in listed:
        detail = client.boot_resources.get(resource.id)
        sets = truth.get(f"/MAAS/api/2.0/boot-resources/{resource.id}/").json()["sets"]
        assert {
            version: {name: (f.sha256, f.size, f.complete) for name, f in s.files.items()}
            for version, s in detail.sets.items()
        } == {
            version: {
                name: (f["sha256"], f["size"], f["complete"]) for name, f in s["files"].items()
            }
            for version, s in sets.items()
        }
    truth.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_python_libmaas_manages_sources_and_selections(
    simulator_for: ServerFactory, version: str
) -> None:
    client, truth = libmaas(simulator_for(maas_version=version))
    [source] = client.boot_sources.list()
    assert source.url == truth.get(f"/MAAS/api/2.0/boot-sources/{source.id}/").json()["url"]
    selections = client._origin.BootSourceSelections  # the facade has no selections
    # A release this MAAS series does not select already (its seeded LTS differs by series).
    taken = {selection.release for selection in selections.read(source)}
    release = next(r for r in ("bionic", "focal", "jammy", "noble") if r not in taken)
    created = selections.create(
        source, "ubuntu", release, arches=["amd64"], subarches=["*"], labels=["*"]
    )
    stored = truth.get(f"/MAAS/api/2.0/boot-sources/{source.id}/selections/{created.id}/").json()
    assert (stored["release"], stored["arches"]) == (release, ["amd64"])
    assert created.id in {s.id for s in selections.read(source)}
    created.delete()
    missing = truth.get(f"/MAAS/api/2.0/boot-sources/{source.id}/selections/{created.id}/")
    assert missing.status_code == 404
    truth.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_python_libmaas_uploads_a_custom_image_through_upload_uri(
    simulator_for: ServerFactory, version: str
) -> None:
    client, truth = libmaas(simulator_for(maas_version=version))
    content = bytes(range(256)) * 20_000  # 5 MB: more than one of libmaas's chunks
    resource = client.boot_resources.create(
        "custom/libmaas",
        "amd64/generic",
        BytesIO(content),
        title="uploaded by python-libmaas",
        filetype=BootResourceFileType.TGZ,
        chunk_size=1 << 20,
    )
    detail = truth.get(f"/MAAS/api/2.0/boot-resources/{resource.id}/").json()
    [latest] = detail["sets"].values()
    [file] = latest["files"].values()
    assert (file["sha256"], file["size"], file["complete"]) == (
        hashlib.sha256(content).hexdigest(),
        len(content),
        True,
    )
    truth.close()


def test_python_libmaas_starts_and_stops_an_import(simulator_for: ServerFactory) -> None:
    server = simulator_for(maas_version="3.5", import_duration_s=3600.0)
    client, truth = libmaas(server)
    client.boot_resources.start_import()
    importing = "/MAAS/api/2.0/boot-resources/?op=is_importing"
    assert truth.get(importing).json() is True
    client.boot_resources.stop_import()
    assert truth.get(importing).json() is False
    truth.close()
