"""MAAS 3.8's boot-source fields (name, priority, enabled, skip_keyring_verification) in
GraphQL and REST: MAAS's values on 3.8, null before (maas-api.md §6.1)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY, USER_KEY
from tests.gateway import gateway_settings, running_gateway

FIELDS = "{ bootSources { url name priority enabled skipKeyringVerification } }"


@pytest.fixture(params=["3.5", "3.8"])
def gateway_on(request: pytest.FixtureRequest) -> Iterator[tuple[str, BackgroundServer]]:
    from app.simulator import SimulatorConfig, create_simulator

    version: str = request.param
    config = SimulatorConfig(admin_key=ADMIN_KEY, user_key=USER_KEY, seed=1, maas_version=version)
    with (
        BackgroundServer(create_simulator(config)) as simulator,
        running_gateway(gateway_settings(simulator.url, ADMIN_KEY)) as gateway,
    ):
        yield version, gateway


def test_the_38_fields_come_from_maas_and_are_null_before(
    gateway_on: tuple[str, BackgroundServer],
) -> None:
    version, gateway = gateway_on
    graphql = httpx.post(f"{gateway.url}/graphql", json={"query": FIELDS}, timeout=30).json()
    rest = httpx.get(f"{gateway.url}/api/v1/boot-sources", timeout=30).json()
    [source] = graphql["data"]["bootSources"]
    [listed] = rest
    if version == "3.8":
        assert source["name"] and isinstance(source["priority"], int)
        assert source["enabled"] is True and isinstance(source["skipKeyringVerification"], bool)
        assert (listed["name"], listed["priority"]) == (source["name"], source["priority"])
    else:
        assert [source[k] for k in ("name", "priority", "enabled", "skipKeyringVerification")] == [
            None
        ] * 4
        assert listed["name"] is None and listed["priority"] is None


CREATE = """mutation($input: CreateBootSourceInput!) { createBootSource(input: $input) {
  bootSource { url name priority enabled skipKeyringVerification } errors { field message } } }"""
NEW_SOURCE = {
    "url": "http://images.maas.io/ephemeral-v3/candidate/",
    "keyringFilename": "/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg",
    "name": "candidate",
    "priority": 5,
    "enabled": False,
}


def test_the_38_fields_are_set_on_38_and_refused_before_anything_is_written(
    gateway_on: tuple[str, BackgroundServer],
) -> None:
    version, gateway = gateway_on
    body = {"query": CREATE, "variables": {"input": NEW_SOURCE}}
    payload = httpx.post(f"{gateway.url}/graphql", json=body, timeout=30).json()["data"][
        "createBootSource"
    ]
    sources = httpx.get(f"{gateway.url}/api/v1/boot-sources", timeout=30).json()
    if version == "3.8":
        assert payload["errors"] == []
        made = payload["bootSource"]
        assert (made["name"], made["priority"], made["enabled"]) == ("candidate", 5, False)
        assert len(sources) == 2
    else:
        assert payload["bootSource"] is None
        assert {e["field"] for e in payload["errors"]} == {"name", "priority", "enabled"}
        assert "MAAS 3.8" in payload["errors"][0]["message"]
        assert len(sources) == 1  # nothing was written
    rest = httpx.post(
        f"{gateway.url}/api/v1/boot-sources",
        json={
            "url": "http://images.maas.io/ephemeral-v3/daily/",
            "priority": 7,
            "keyring_filename": "/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg",
        },
        timeout=30,
    )
    assert rest.status_code == (201 if version == "3.8" else 400), rest.text
