"""Fixtures for REST tests: real gateways on loopback sockets in front of the simulator."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings, running_gateway

GatewayFactory = Callable[..., BackgroundServer]

# Small chunks so a few-MiB image takes many chunk PUTs.
TEST_CHUNK = 64 * 1024


@pytest.fixture
def start_gateway(simulator: BackgroundServer) -> Iterator[GatewayFactory]:
    """Start gateways with setting overrides; all are stopped when the test ends."""
    with ExitStack() as stack:

        def start(api_key: str = ADMIN_KEY, **overrides: Any) -> BackgroundServer:
            overrides.setdefault("upload_chunk_size", TEST_CHUNK)
            settings = gateway_settings(simulator.url, api_key, **overrides)
            return stack.enter_context(running_gateway(settings))

        yield start


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> BackgroundServer:
    return start_gateway()


@pytest.fixture
def api(gateway: BackgroundServer) -> Iterator[httpx.Client]:
    """A client for the gateway's /api/v1."""
    with httpx.Client(base_url=f"{gateway.url}/api/v1", timeout=30.0) as client:
        yield client


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The error object of a response, checked to be the gateway's one envelope."""
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
