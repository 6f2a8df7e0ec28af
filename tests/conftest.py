"""Shared fixtures: the MAAS simulator on a real loopback socket, reset before every test, and
headless Chromium for the browser pages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from app.cli.server import BackgroundServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.browser import OfflinePage

# Fixed keys in MAAS's shape (18:18:32, maas-api.md §2.1) so tests and scripts can use them.
ADMIN_KEY = "AdminConsumerKey01:AdminTokenKey00001:AdminTokenSecret0000000000000001"
USER_KEY = "UserConsumerKey001:UserTokenKey000001:UserTokenSecret00000000000000001"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[BackgroundServer]:
    from app.simulator import SimulatorConfig, create_simulator

    config = SimulatorConfig(admin_key=ADMIN_KEY, user_key=USER_KEY, seed=1, import_duration_s=1.0)
    with BackgroundServer(create_simulator(config)) as server:
        yield server


@pytest.fixture
def simulator(simulator_server: BackgroundServer) -> BackgroundServer:
    """The session's simulator with its state, config, faults and counters back to the start."""
    # verify=False: plain HTTP on loopback, so skip loading a CA bundle (30 ms per call).
    httpx.post(f"{simulator_server.url}/_simulator/reset", verify=False).raise_for_status()
    return simulator_server


@pytest.fixture
def start_gateway(simulator: BackgroundServer) -> Iterator[Any]:
    """Start gateways against the simulator with setting overrides (and another MAAS key if
    given); all are stopped when the test ends."""
    from tests.gateway import gateway_settings, running_gateway

    with ExitStack() as stack:

        def start(api_key: str = ADMIN_KEY, **overrides: Any) -> BackgroundServer:
            settings = gateway_settings(simulator.url, api_key, **overrides)
            return stack.enter_context(running_gateway(settings))

        yield start


@pytest.fixture(scope="session")
def vendored_assets() -> None:
    """GraphiQL's and Swagger UI's assets in app/static, as `make assets` leaves them."""
    from tests.browser import fetch_vendored_assets

    fetch_vendored_assets()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    from tests.browser import launched_chromium

    # Module scope: the sync API's event loop must be gone before other modules' async tests.
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def offline_page(chromium: Browser) -> Iterator[OfflinePage]:
    """A page that can reach loopback only, keeping what was blocked and what went wrong."""
    from tests.browser import offline_page_in

    with offline_page_in(chromium) as page:
        yield page
