"""The cold nested read (1 list + every detail) through MaasClient: fan-out against sequential.

A naive client reads the 50 details one after another; MaasClient gathers them under its
concurrency bound, so the whole tree should take about two round trips. The simulator runs
in its own process at a fixed latency; both HTTP backends of the client are measured.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from app.maas import DEFAULT_BACKEND, Backend, MaasClient, MaasCredentials
from bench import Result, at_least, at_most, benchmark
from bench.upstream import ADMIN_KEY, simulator_process

LATENCY_MS = 20.0
RESOURCES = 50
FANOUT_ROUNDS = 15
SEQUENTIAL_ROUNDS = 3
WARMUP_ROUNDS = 3
MAX_OVER_IDEAL = 1.5
MIN_SPEEDUP = 15.0
BACKENDS: tuple[Backend, ...] = (
    DEFAULT_BACKEND,
    "httpx" if DEFAULT_BACKEND == "aiohttp" else "aiohttp",
)


async def read_tree_fanout(client: MaasClient) -> int:
    listing = await client.list_boot_resources()
    details = await asyncio.gather(*(client.get_boot_resource(r.id) for r in listing))
    return len(details)


async def read_tree_sequential(client: MaasClient) -> int:
    listing = await client.list_boot_resources()
    for resource in listing:
        await client.get_boot_resource(resource.id)
    return len(listing)


async def _median_ms(
    read: Callable[[MaasClient], Awaitable[int]], client: MaasClient, rounds: int
) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        count = await read(client)
        samples.append((time.perf_counter() - started) * 1000)
        if count != RESOURCES:
            raise RuntimeError(f"expected {RESOURCES} resources, read {count}")
    return statistics.median(samples)


async def _measure(url: str, backend: Backend) -> tuple[float, float]:
    """(fan-out median ms, sequential median ms) on one long-lived client, pool warmed."""
    async with MaasClient(url, MaasCredentials.from_key(ADMIN_KEY), backend=backend) as client:
        for _ in range(WARMUP_ROUNDS):
            await read_tree_fanout(client)
        fanout = await _median_ms(read_tree_fanout, client, FANOUT_ROUNDS)
        sequential = await _median_ms(read_tree_sequential, client, SEQUENTIAL_ROUNDS)
    return fanout, sequential


@benchmark("fanout")
def run() -> list[Result]:
    ideal = 2 * LATENCY_MS
    measured: dict[Backend, tuple[float, float]] = {}
    with simulator_process(latency_ms=LATENCY_MS, resources=RESOURCES) as url:
        for backend in BACKENDS:
            measured[backend] = asyncio.run(_measure(url, backend))
    results = []
    for backend, (fanout, sequential) in measured.items():
        is_default = backend == DEFAULT_BACKEND
        label = f"{backend}{' (default)' if is_default else ''}"
        over_ideal = fanout / ideal
        speedup = sequential / fanout
        target, passed = at_most(over_ideal, MAX_OVER_IDEAL)
        results.append(
            Result(
                f"fan-out 1+{RESOURCES} reads vs ideal 2x{LATENCY_MS:g} ms, {label}",
                fanout,
                ideal,
                over_ideal,
                target,
                passed if is_default else None,
            )
        )
        target, passed = at_least(speedup, MIN_SPEEDUP)
        results.append(
            Result(
                f"sequential 1+{RESOURCES} reads vs fan-out, {label}",
                sequential,
                fanout,
                speedup,
                target,
                passed if is_default else None,
            )
        )
    other = BACKENDS[1]
    results.append(
        Result(
            f"fan-out on {other} vs {DEFAULT_BACKEND} (the default)",
            measured[other][0],
            measured[DEFAULT_BACKEND][0],
            measured[other][0] / measured[DEFAULT_BACKEND][0],
            "info",
            None,
        )
    )
    return results
