"""Fixtures for upstream-fault tests: gateways with short MAAS deadlines, and leak counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.cli.server import BackgroundServer
from app.main import GatewayApp, create_app
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings
from tests.leaks import LoopProbe, Resources

TIMEOUT = 0.5
"""The MAAS deadline these gateways get: every fault must be answered well within DEADLINE."""
DEADLINE = 3.0


@dataclass(frozen=True)
class Gateway:
    url: str
    app: GatewayApp
    probe: LoopProbe


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def start_gateway(simulator: BackgroundServer) -> Iterator[GatewayFactory]:
    """Gateways with a short MAAS timeout and quick retries; stopped when the test ends."""
    with ExitStack() as stack:

        def start(maas_url: str | None = None, **overrides: Any) -> Gateway:
            overrides.setdefault("maas_timeout", TIMEOUT)
            overrides.setdefault("maas_connect_timeout", TIMEOUT)
            overrides.setdefault("maas_retry_backoff", 0.01)
            settings = gateway_settings(simulator.url, ADMIN_KEY, **overrides)
            if maas_url is not None:
                settings = settings.model_copy(update={"maas_url": maas_url})
            app = create_app(settings)
            probe = LoopProbe(app)
            server = stack.enter_context(BackgroundServer(probe))
            return Gateway(server.url, app, probe)

        yield start


@pytest.fixture
def resources(simulator: BackgroundServer) -> Resources:
    return Resources(httpx.URL(simulator.url).port or 80)
