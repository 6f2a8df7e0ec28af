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
