"""The cold nested query seen from outside: a gateway process whose entity caches expire at
once, its wall time, CPU and MAAS calls per query; and its floor, a bare aiohttp client making
the same GETs (the list, then every detail) with the same OAuth header."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import httpx
import orjson
import uvloop

from app.maas import MaasCredentials
from bench.asgi import fetch, post_request
from bench.serve import ServerProcess, environment, server_process
from bench.upstream import ADMIN_KEY

LATENCY_MS = 20.0
RESOURCES = 50
IN_FLIGHT = 50
NESTED = (
    "query Nested($type: BootResourceType) { bootResources(filter: {type: $type}) {"
    " id name os release title type subarches architecture { arch subarch }"
    " sets { version label size complete progress"
    " files { filename filetype size sha256 complete progress } } } }"
)
# A microsecond of freshness: every query reads MAAS again (the settings refuse 0), while the
# response cache still stores each answer, as it does for a real first query.
COLD_CACHES = {
    "MAAS_GATEWAY_CACHE_TTL_BOOT_RESOURCES": "1e-06",
    "MAAS_GATEWAY_CACHE_TTL_BOOT_RESOURCE": "1e-06",
}

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop, as the gateway's server does: the floor gets the same event loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


@dataclass(frozen=True, slots=True)
class Run:
    """One side's rounds: wall time and CPU of each, and MAAS calls per round. Medians: a
    burst of the neighbours' load (which a VM can charge as CPU time) moves one round, not
    the figure."""

    wall_ms: list[float]
    cpu_samples_ms: list[float]
    maas_calls: float

    @property
    def median_ms(self) -> float:
        return statistics.median(self.wall_ms)

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpu_samples_ms)


class Floor:
    """A bare aiohttp client: the list, then every detail with at most `in_flight` in flight,
    each signed as the gateway signs (app/maas/auth.py) and decoded with orjson."""

    def __init__(self, maas_url: str, in_flight: int = IN_FLIGHT) -> None:
        self._root = f"{maas_url.rstrip('/')}/api/2.0/"
        self._credentials = MaasCredentials.from_key(ADMIN_KEY)
        self._in_flight = in_flight
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0

    async def __aenter__(self) -> Floor:
        connector = aiohttp.TCPConnector(limit=max(100, self._in_flight))
        self._session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get(self, path: str) -> Any:
        assert self._session is not None
        authorization = self._credentials.authorization(
            nonce=secrets.token_hex(16), timestamp=int(time.time())
        )
        self.sent += 1
        async with self._session.get(
            self._root + path, headers={"Authorization": authorization}
        ) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"MAAS answered {response.status}: {body[:200]!r}")
        return orjson.loads(body)

    async def tree(self) -> int:
        bound = asyncio.Semaphore(self._in_flight)

        async def detail(resource_id: int) -> Any:
            async with bound:
                return await self._get(f"boot-resources/{resource_id}/")

        listing = await self._get("boot-resources/")
        details = await asyncio.gather(*(detail(r["id"]) for r in listing))
        return len(details)


@contextlib.contextmanager
def cold_gateway(maas_url: str, **settings: str) -> Iterator[ServerProcess]:
    """A gateway process that reads MAAS afresh for every query; `settings` are more
    MAAS_GATEWAY_* variables (a fan-out bound, a raised limit)."""
    with environment(**COLD_CACHES, **settings), server_process("gateway", maas_url) as gateway:
        yield gateway


def query(gateway: ServerProcess, n: int) -> bytes:
    """The nested query's HTTP request; `n` makes each answer new to the response cache."""
    body = orjson.dumps({"query": NESTED, "variables": {"round": n}})
    return post_request(*gateway.host_port, "/graphql", body)


async def _query_ms(gateway: ServerProcess, n: int, resources: int) -> float:
    started = time.perf_counter()
    answer = orjson.loads(await fetch(*gateway.host_port, query(gateway, n)))
    elapsed = (time.perf_counter() - started) * 1000
    if len(answer["data"]["bootResources"]) != resources:
        raise RuntimeError(f"expected {resources} resources: {str(answer)[:200]}")
    return elapsed


def maas_calls(maas_url: str) -> int:
    """Boot-resource requests the simulator has received so far."""
    control = maas_url.removesuffix("/MAAS") + "/_simulator/requests"
    counts: dict[str, int] = httpx.get(control, timeout=10).json()["counts"]
    return sum(n for path, n in counts.items() if "boot-resources" in path)


async def measure(
    gateway: ServerProcess,
    floor: Floor,
    maas_url: str,
    *,
    resources: int = RESOURCES,
    rounds: int = 20,
    warmup: int = 2,
) -> tuple[Run, Run]:
    """(gateway, floor): a cold query and a floor tree in turns, so noise falls on both. The
    gateway's CPU is its process's threads' over each query, the floor's this process's over
    each tree; MAAS calls are the simulator's count, less what the floor sent."""
    for n in range(warmup):
        await _query_ms(gateway, -1 - n, resources)
        await floor.tree()
    calls, floor_sent = maas_calls(maas_url), floor.sent
    walls: list[float] = []
    cpus: list[float] = []
    floor_walls: list[float] = []
    floor_cpus: list[float] = []
    for n in range(rounds):
        cpu = gateway.thread_cpu_seconds()
        walls.append(await _query_ms(gateway, n, resources))
        cpus.append((gateway.thread_cpu_seconds() - cpu) * 1000)
        cpu, started = time.process_time(), time.perf_counter()
        if await floor.tree() != resources:
            raise RuntimeError(f"the floor did not read {resources} resources")
        floor_walls.append((time.perf_counter() - started) * 1000)
        floor_cpus.append((time.process_time() - cpu) * 1000)
    if min(cpus) < 0:
        raise RuntimeError("a gateway thread ended during a query: its CPU went with it")
    floor_calls = floor.sent - floor_sent
    gateway_calls = maas_calls(maas_url) - calls - floor_calls
    return (
        Run(walls, cpus, gateway_calls / rounds),
        Run(floor_walls, floor_cpus, floor_calls / rounds),
    )


async def floor_cpu_ms(maas_url: str, *, rounds: int = 15, warmup: int = 3) -> float:
    """Median CPU ms per tree of the floor alone, at 50 in flight."""
    async with Floor(maas_url) as floor:
        for _ in range(warmup):
            await floor.tree()
        samples = []
        for _ in range(rounds):
            cpu = time.process_time()
            await floor.tree()
            samples.append((time.process_time() - cpu) * 1000)
        return statistics.median(samples)
