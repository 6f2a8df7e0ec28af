"""Fixtures for GraphQL tests: a gateway against the session's simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from app.serving import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings, running_gateway

GatewayFactory = Callable[..., BackgroundServer]


@pytest.fixture
def start_gateway(simulator: BackgroundServer) -> Iterator[GatewayFactory]:
    """Start gateways with setting overrides; all are stopped when the test ends."""
    with ExitStack() as stack:

        def start(api_key: str = ADMIN_KEY, **overrides: Any) -> BackgroundServer:
            settings = gateway_settings(simulator.url, api_key, **overrides)
            return stack.enter_context(running_gateway(settings))

        yield start


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> BackgroundServer:
    return start_gateway()
