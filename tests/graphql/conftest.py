"""Fixtures for GraphQL tests: a gateway against the session's simulator."""

from __future__ import annotations

import pytest

from app.cli.server import BackgroundServer
from tests.gateway import GatewayFactory


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> BackgroundServer:
    return start_gateway()
