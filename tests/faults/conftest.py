"""Fixtures for upstream-fault tests: gateways with short MAAS deadlines, and leak counts."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from app.main import GatewayApp, create_app
from app.serving import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings

TIMEOUT = 0.5
"""The MAAS deadline these gateways get: every fault must be answered well within DEADLINE."""
DEADLINE = 3.0


class LoopProbe:
    """Wraps the app to learn the server's event loop, so a test can count its tasks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def tasks(self) -> int:
        """Tasks alive in the gateway's loop (the counting coroutine's own task excluded)."""

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(5)


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


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def sockets_to(port: int) -> int:
    """Established TCP connections from this process's tests to `port` on loopback."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":  # 01: ESTABLISHED
                    count += 1
    return count


class Resources:
    """What a fault could leak: file handles, threads, and connections to the simulator."""

    def __init__(self, simulator_port: int) -> None:
        self._port = simulator_port

    def counts(self) -> dict[str, int]:
        return {
            "fds": open_fds(),
            "threads": threading.active_count(),
            "connections": sockets_to(self._port),
        }

    def settle(self, before: dict[str, int], timeout: float = 5.0) -> dict[str, int]:
        """Counts once they are back to `before` (sockets close asynchronously), or the last."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.counts()
            if all(now[k] <= before[k] for k in before) or time.monotonic() > deadline:
                return now
            time.sleep(0.05)

    def assert_no_leaks(self, before: dict[str, int]) -> None:
        after = self.settle(before)
        assert all(after[k] <= before[k] for k in before), (before, after)


@pytest.fixture
def resources(simulator: BackgroundServer) -> Resources:
    return Resources(httpx.URL(simulator.url).port or 80)
