"""The cold nested read (1 list + every detail) through MaasClient: fan-out against sequential.

A naive client reads the 50 details one after another; MaasClient gathers them under its
concurrency bound, so the whole tree should take about two round trips. The simulator runs
in its own process at a fixed latency; both HTTP backends of the client are measured, their CPU
per tree against a bare aiohttp client making the same GETs (bench/cold.py).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.maas import DEFAULT_BACKEND, Backend, MaasClient, MaasCredentials
from bench import Result, at_least, at_most, benchmark, cold, cpu_row
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


async def timed_rounds(
    read: Callable[[MaasClient], Awaitable[int]],
    client: MaasClient,
    rounds: int,
    floor: cold.Floor | None = None,
) -> tuple[float, float, float]:
    """Medians of `rounds` reads: (wall ms, CPU ms, the floor's CPU ms per tree); with a
    floor, one of its trees after each read, so noise falls on both alike."""
    samples, cpus, floor_cpus = [], [], [0.0]
    for _ in range(rounds):
        spent, started = time.process_time(), time.perf_counter()
        count = await read(client)
        samples.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - spent) * 1000)
        if count != RESOURCES:
            raise RuntimeError(f"expected {RESOURCES} resources, read {count}")
        if floor is not None:
            spent = time.process_time()
            await floor.tree()
            floor_cpus.append((time.process_time() - spent) * 1000)
    median = statistics.median
    return median(samples), median(cpus), median(floor_cpus[1:] or floor_cpus)


@dataclass(frozen=True, slots=True)
class Measured:
    fanout_ms: float
    fanout_cpu_ms: float
    floor_cpu_ms: float
    sequential_ms: float


async def _measure(url: str, backend: Backend, rounds: tuple[int, int]) -> Measured:
    """Fan-out (in turns with the floor's trees) and sequential reads, (fan-out, sequential)
    rounds of each, on one long-lived client, pool warmed."""
    async with (
        MaasClient(url, MaasCredentials.from_key(ADMIN_KEY), backend=backend) as client,
        cold.Floor(url) as floor,
    ):
        for _ in range(WARMUP_ROUNDS):
            await read_tree_fanout(client)
            await floor.tree()
        fanout, cpu, floor_cpu = await timed_rounds(read_tree_fanout, client, rounds[0], floor)
        sequential, _, _ = await timed_rounds(read_tree_sequential, client, rounds[1])
    return Measured(fanout, cpu, floor_cpu, sequential)


@benchmark("fanout")
def run(
    backends: tuple[Backend, ...] = BACKENDS,
    rounds: tuple[int, int] = (FANOUT_ROUNDS, SEQUENTIAL_ROUNDS),
) -> list[Result]:
    """Each backend's wall time and CPU per tree, (fan-out, sequential) rounds of each; on
    uvloop, as the gateway serves."""
    measured: dict[Backend, Measured] = {}
    with simulator_process(latency_ms=LATENCY_MS, resources=RESOURCES) as url:
        for backend in backends:
            measured[backend] = cold.run(_measure(url, backend, rounds))
    results = []
    for backend, figures in measured.items():
        results += _rows(backend, figures)
    other = BACKENDS[1]
    if other not in measured:
        return results
    results.append(
        Result(
            f"fan-out on {other} vs {DEFAULT_BACKEND} (the default)",
            measured[other].fanout_ms,
            measured[DEFAULT_BACKEND].fanout_ms,
            measured[other].fanout_ms / measured[DEFAULT_BACKEND].fanout_ms,
            "info",
            None,
        )
    )
    return results


def _rows(backend: Backend, figures: Measured) -> list[Result]:
    is_default = backend == DEFAULT_BACKEND
    label = f"{backend}{' (default)' if is_default else ''}"
    ideal = 2 * LATENCY_MS
    over_ideal = figures.fanout_ms / ideal
    speedup = figures.sequential_ms / figures.fanout_ms
    ideal_target, ideal_passed = at_most(over_ideal, MAX_OVER_IDEAL)
    speedup_target, speedup_passed = at_least(speedup, MIN_SPEEDUP)
    return [
        Result(
            f"fan-out 1+{RESOURCES} reads vs ideal 2x{LATENCY_MS:g} ms, {label}",
            figures.fanout_ms,
            ideal,
            over_ideal,
            ideal_target,
            ideal_passed if is_default else None,
        ),
        # The issue bounds the gateway's CPU against the floor (graphql-cold-fanout), not the
        # client's alone: for information, and for make bench-check.
        cpu_row(
            f"fan-out 1+{RESOURCES} reads, client CPU ms vs a bare aiohttp client's, {label}",
            figures.fanout_cpu_ms,
            figures.floor_cpu_ms,
        ),
        Result(
            f"sequential 1+{RESOURCES} reads vs fan-out, {label}",
            figures.sequential_ms,
            figures.fanout_ms,
            speedup,
            speedup_target,
            speedup_passed if is_default else None,
        ),
    ]
