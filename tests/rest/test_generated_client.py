"""A Python client generated from the committed OpenAPI document by openapi-python-client works
against a real gateway: the document is one a generator can use, without warnings."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from app.cli.server import BackgroundServer

DOCUMENT = Path(__file__).parents[2] / "openapi" / "openapi.json"
PACKAGE = "maas_gateway_client"


@pytest.fixture
def client_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Generate the client into a temporary directory and make it importable."""
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run on the generated code
    generate = ["generate", "--path", str(DOCUMENT), "--meta", "none", "--config", str(config)]
    output = ["--output-path", str(tmp_path / PACKAGE)]
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", *generate, "--fail-on-warning", *output],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    yield PACKAGE
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def module(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")


def test_a_generated_client_lists_boot_resources(
    client_package: str, gateway: BackgroundServer, api: httpx.Client
) -> None:
    client_module = module(client_package, "client")
    listing = module(client_package, "api.boot_resources.list_boot_resources")
    resource_type = module(client_package, "models.list_boot_resources_type_type_0")
    expected = api.get("/boot-resources", params={"type": "synced"}).json()
    assert expected, "the simulator seeds synced resources"
    synced = resource_type.ListBootResourcesTypeType0("synced")
    with client_module.Client(base_url=gateway.url) as client:
        response = listing.sync_detailed(client=client, type_=synced)
        detailed = listing.sync(client=client, type_=synced, expand="sets")
    assert response.status_code == 200
    resources: list[Any] = response.parsed
    assert [(r.id, r.name, r.architecture) for r in resources] == [
        (r["id"], r["name"], r["architecture"]) for r in expected
    ]
    assert {r.type_.value for r in resources} == {"synced"}
    assert len(detailed) == len(resources)
    assert all(r.sets and r.sets[0].files for r in detailed)


def test_a_generated_client_creates_a_boot_source(
    client_package: str, gateway: BackgroundServer, api: httpx.Client
) -> None:
    client_module = module(client_package, "client")
    create = module(client_package, "api.boot_sources.create_boot_source")
    body = module(client_package, "models.boot_source_create").BootSourceCreate
    with client_module.Client(base_url=gateway.url) as client:
        created = create.sync_detailed(
            client=client, body=body(url="http://client.example.com/", keyring_filename="/k.gpg")
        )
    assert created.status_code == 201, created.content
    source = created.parsed
    assert (source.url, source.keyring_filename) == ("http://client.example.com/", "/k.gpg")
    assert api.get(f"/boot-sources/{source.id}").json()["url"] == source.url
