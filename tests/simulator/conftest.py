"""Fixtures for the simulator suite: signed clients and extra simulators for other versions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.cli.server import BackgroundServer
from app.simulator import SimulatorConfig, create_simulator

from .helpers import Maas, control, keys

ServerFactory = Callable[..., BackgroundServer]


@pytest.fixture
def admin(simulator: BackgroundServer) -> Iterator[Maas]:
    client = Maas(simulator.url, keys(simulator.url)[0])
    yield client
    client.close()


@pytest.fixture
def user(simulator: BackgroundServer) -> Iterator[Maas]:
    client = Maas(simulator.url, keys(simulator.url)[1])
    yield client
    client.close()


@pytest.fixture
def anon(simulator: BackgroundServer) -> Iterator[Maas]:
    client = Maas(simulator.url, None)
    yield client
    client.close()


@pytest.fixture(scope="session")
def _simulators() -> Iterator[dict[tuple[tuple[str, Any], ...], BackgroundServer]]:
    servers: dict[tuple[tuple[str, Any], ...], BackgroundServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def simulator_for(
    _simulators: dict[tuple[tuple[str, Any], ...], BackgroundServer],
) -> ServerFactory:
    """A simulator built from these config fields, started once per session, reset per use."""

    def factory(**config: Any) -> BackgroundServer:
        config.setdefault("seed", 7)
        config.setdefault("import_duration_s", 1.0)
        key = tuple(sorted(config.items()))
        server = _simulators.get(key)
        if server is None:
            server = BackgroundServer(create_simulator(SimulatorConfig(**config))).start()
            _simulators[key] = server
        else:
            control(server.url, "POST", "reset").raise_for_status()
        return server

    return factory


@pytest.fixture
def maas_for(simulator_for: ServerFactory) -> Iterator[Callable[..., tuple[Maas, Maas]]]:
    """(admin, user) clients on a simulator imitating another MAAS version."""
    opened: list[Maas] = []

    def factory(**config: Any) -> tuple[Maas, Maas]:
        server = simulator_for(**config)
        admin_key, user_key = keys(server.url)
        clients = (Maas(server.url, admin_key), Maas(server.url, user_key))
        opened.extend(clients)
        return clients

    yield factory
    for client in opened:
        client.close()
