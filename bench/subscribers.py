"""Subscriptions at scale: 5,000 authenticated importProgress subscribers on one gateway. What
each costs in memory, how fast one progress change reaches all of them, and how often MAAS is
polled meanwhile (once per interval, whatever the number of subscribers)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench import Result, at_most, benchmark
from bench.asgi import BENCH_TOKEN
from bench.idle_sockets import settled_rss
from bench.serve import ServerProcess, environment, server_process
from bench.upstream import simulator_process

SUBSCRIBERS = 5000
INTERVAL = 0.5
PROTOCOL = Subprotocol("graphql-transport-ws")
PROGRESS = "subscription { importProgress { importing resources { name complete progress } } }"
KIB = 1024


@benchmark("subscribers")
def subscribers() -> list[Result]:
    """RSS per subscriber against a 20 KiB budget, and the p99 time for one change to reach
    every subscriber against 100 ms (from the first subscriber that hears it)."""
    with (
        simulator_process(latency_ms=0, resources=50) as maas_url,
        environment(
            MAAS_GATEWAY_GRAPHQL_WS_MAX_PENDING=str(SUBSCRIBERS),
            MAAS_GATEWAY_GRAPHQL_WS_MAX_PENDING_PER_CLIENT=str(SUBSCRIBERS),
            MAAS_GATEWAY_GRAPHQL_MAX_SUBSCRIPTIONS_PER_PRINCIPAL=str(SUBSCRIBERS + 10),
            MAAS_GATEWAY_IMPORT_POLL_INTERVAL=str(INTERVAL),
            MAAS_GATEWAY_CACHE_TTL_WHILE_IMPORTING="0.1",
        ),
        server_process("gateway", maas_url) as gateway,
    ):
        figures = asyncio.run(_measure(gateway, maas_url))
    per_subscriber, p99, polls_per_interval, cpu_us, wall_us = figures
    rss_target, rss_passed = at_most(per_subscriber / 20, 1.0)
    fanout_target, fanout_passed = at_most(p99 / 100, 1.0)
    return [
        Result(
            f"RSS per importProgress subscriber, {SUBSCRIBERS} open, vs a 20 KiB budget",
            per_subscriber,
            20.0,
            per_subscriber / 20,
            rss_target,
            rss_passed,
            unit="KiB",
        ),
        Result(
            f"one progress change to all {SUBSCRIBERS} subscribers, p99, vs 100 ms",
            p99,
            100.0,
            p99 / 100,
            fanout_target,
            fanout_passed,
        ),
        Result(
            f"MAAS is_importing polls per interval with {SUBSCRIBERS} subscribers",
            polls_per_interval,
            1.0,
            polls_per_interval,
            "≤ 1.2x",
            polls_per_interval <= 1.2,
            unit="",
        ),
        # From the mutation to the last subscriber hearing it: the ratio is the cores busy.
        Result(
            f"server CPU per subscriber for one change to all {SUBSCRIBERS} vs wall time per "
            "subscriber, µs",
            cpu_us,
            wall_us,
            cpu_us / wall_us,
            "info",
            None,
            unit="µs",
        ),
    ]


async def _measure(
    gateway: ServerProcess, maas_url: str
) -> tuple[float, float, float, float, float]:
    """(RSS KiB per subscriber, p99 ms of one change's spread, polls per interval, and the
    server's CPU and wall µs per subscriber from the change to the last who heard it)."""
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    first = await _subscribe(url)  # the poller and the first socket's allocations
    before = settled_rss(gateway)
    sockets = await _open_many(url, SUBSCRIBERS - 1)
    after = settled_rss(gateway)
    everyone = [first, *sockets]
    polls_before, started = _polls(gateway), time.monotonic()
    await asyncio.sleep(10 * INTERVAL)  # a benchmark's window, not a test's wait
    polls = (_polls(gateway) - polls_before) / ((time.monotonic() - started) / INTERVAL)
    heard = asyncio.gather(*(_next_change(ws) for ws in everyone))
    cpu, changed = gateway.cpu_seconds(), time.monotonic()
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {BENCH_TOKEN}"}) as client:
        answer = await client.post(
            f"{gateway.url}/graphql", json={"query": "mutation { startImport { importing } }"}
        )
        answer.raise_for_status()
    times = await heard
    cpu_us = (gateway.cpu_seconds() - cpu) / SUBSCRIBERS * 1e6
    wall_us = (max(times) - changed) / SUBSCRIBERS * 1e6
    await asyncio.gather(*(ws.close() for ws in everyone))
    spread = sorted((t - min(times)) * 1000 for t in times)
    p99 = statistics.quantiles(spread, n=100)[98]
    return (after - before) / (SUBSCRIBERS - 1) / KIB, p99, polls, cpu_us, wall_us


async def _subscribe(url: str) -> ClientConnection:
    ws = await connect(url, subprotocols=[PROTOCOL], open_timeout=120, max_queue=4)
    await ws.send(
        json.dumps(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {BENCH_TOKEN}"}}
        )
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PROGRESS}}))
    message = json.loads(await ws.recv())
    assert message["type"] == "next", message
    return ws


async def _open_many(url: str, count: int) -> list[ClientConnection]:
    # In waves: a gateway accepting thousands of handshakes at once measures its backlog.
    sockets: list[ClientConnection] = []
    for start in range(0, count, 250):
        wave = min(250, count - start)
        sockets += await asyncio.gather(*(_subscribe(url) for _ in range(wave)))
    return sockets


async def _next_change(ws: ClientConnection) -> float:
    message = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
    assert message["type"] == "next", message
    return time.monotonic()


def _polls(gateway: ServerProcess) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("maas_gateway_upstream_requests_total") and "is_importing" in line
    )
