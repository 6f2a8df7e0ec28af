"""Leak counting for tests: a gateway's event-loop tasks, this process's file handles and
threads, and its established connections to a port."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from starlette.types import ASGIApp, Receive, Scope, Send


class LoopProbe:
    """Wraps an app to learn the server's event loop, so a test can count its tasks."""

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


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def sockets_to(port: int) -> int:
    """Established TCP connections whose far end is `port`: the clients' side of each (a
    server in this process holds the other side, whose far end is an ephemeral port)."""
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
    """What a fault or a load could leak: file handles, threads, connections to a port."""

    def __init__(self, port: int) -> None:
        self._port = port

    def counts(self) -> dict[str, int]:
        return {
            "fds": open_fds(),
            "threads": threading.active_count(),
            "connections": sockets_to(self._port),
        }

    def settle(
        self, before: dict[str, int], slack: int = 0, timeout: float = 5.0
    ) -> dict[str, int]:
        """Counts once they are back within `slack` of `before` (sockets close asynchronously),
        or the last counts after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.counts()
            if all(now[k] <= before[k] + slack for k in before) or time.monotonic() > deadline:
                return now
            time.sleep(0.05)

    def assert_no_leaks(self, before: dict[str, int], slack: int = 0) -> None:
        after = self.settle(before, slack)
        assert all(after[k] <= before[k] + slack for k in before), (before, after)
