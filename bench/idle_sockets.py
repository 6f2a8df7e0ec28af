"""Idle WebSockets: 2,000 sockets that never sign in, opened and closed against one gateway;
its memory must come back, and with the default caps most are refused at the handshake."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from bench import Result, at_most, benchmark
from bench.serve import ServerProcess, environment, server_process
from bench.upstream import simulator_process

SOCKETS = 2000
PROTOCOL = Subprotocol("graphql-transport-ws")


@benchmark("websocket-idle")
def idle_sockets() -> list[Result]:
    """RSS after 2,000 idle sockets closed, against before them (caps raised so all are
    admitted); how many the default caps admit from one address; and the server's CPU per
    socket in each case."""
    with simulator_process(latency_ms=0, resources=50) as maas_url:
        with (
            environment(
                MAAS_GATEWAY_GRAPHQL_WS_MAX_PENDING="5000",
                MAAS_GATEWAY_GRAPHQL_WS_MAX_PENDING_PER_CLIENT="5000",
            ),
            server_process("gateway", maas_url) as gateway,
        ):
            before, peak, after = asyncio.run(_open_and_close(gateway))
            admitting_cpu = _open_close_cpu(gateway)
        with server_process("gateway", maas_url) as gateway:
            admitted = asyncio.run(_admitted(gateway))
            refusing_cpu = _open_close_cpu(gateway)
    target, passed = at_most(after / before, 1.10)
    mib = 1024 * 1024
    return [
        Result(
            f"RSS after {SOCKETS} idle sockets closed vs before them, MiB",
            after / mib,
            before / mib,
            after / before,
            target,
            passed,
            unit="MiB",
        ),
        Result(
            f"RSS with {SOCKETS} idle sockets open (information), MiB",
            peak / mib,
            before / mib,
            peak / before,
            "",
            None,
            unit="MiB",
        ),
        Result(
            f"idle sockets the default caps admit from one address, of {SOCKETS}",
            float(admitted),
            float(SOCKETS),
            admitted / SOCKETS,
            "info",
            None,
            unit="",
        ),
        Result(
            f"server CPU per socket opened and closed, {SOCKETS} with the default caps vs all "
            "admitted, µs",
            refusing_cpu,
            admitting_cpu,
            refusing_cpu / admitting_cpu,
            "info",
            None,
            unit="µs",
        ),
    ]


def _open_close_cpu(gateway: ServerProcess) -> float:
    """The server's CPU µs per socket over SOCKETS more opened at once and closed."""
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    cpu = gateway.cpu_seconds()

    async def open_and_close() -> None:
        await _close_all(await _open(url, SOCKETS))

    asyncio.run(open_and_close())
    return (gateway.cpu_seconds() - cpu) / SOCKETS * 1e6


async def _open_and_close(gateway: ServerProcess) -> tuple[int, int, int]:
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    await _close_all(await _open(url, 100))  # warm: the first sockets allocate once
    before = settled_rss(gateway)
    sockets = await _open(url, SOCKETS)
    peak = gateway.rss_bytes()
    await _close_all(sockets)
    return before, peak, settled_rss(gateway)


async def _admitted(gateway: ServerProcess) -> int:
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    sockets = await _open(url, SOCKETS)
    count = len(sockets)
    await _close_all(sockets)
    return count


async def _open(url: str, count: int) -> list[ClientConnection]:
    async def one() -> ClientConnection | None:
        try:
            return await connect(url, subprotocols=[PROTOCOL], open_timeout=60)
        except InvalidStatus:
            return None  # refused at the handshake

    opened = await asyncio.gather(*(one() for _ in range(count)))
    return [s for s in opened if s is not None]


async def _close_all(sockets: list[ClientConnection]) -> None:
    await asyncio.gather(*(s.close() for s in sockets))


def settled_rss(gateway: ServerProcess) -> int:
    """The lowest RSS over two seconds: freed memory is returned over a few collections."""
    lowest = gateway.rss_bytes()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        time.sleep(0.1)
        lowest = min(lowest, gateway.rss_bytes())
    return lowest
