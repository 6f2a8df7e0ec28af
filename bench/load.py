"""Load and soak: a realistic mix of GraphQL queries, REST reads and a few writes from many
keep-alive clients against a gateway process in front of a simulator process."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from bench import Result, benchmark
from bench.asgi import AUTHORIZATION
from bench.serve import ServerProcess, server_process
from bench.upstream import simulator_process

MiB = 1024 * 1024
CLIENTS = 64
SECONDS = 60.0
WARMUP_SECONDS = 10.0
LATENCY_MS = 20.0
"""The simulated MAAS's answer time: a LAN round trip plus a Django view."""
MAX_RSS_GROWTH_MIB = 20.0

_GRAPHQL_QUERIES: tuple[tuple[str, dict[str, object] | None, int], ...] = (
    ("{ bootResources { id name architecture { arch subarch } type } }", None, 12),
    ("{ bootResources(filter: {type: UPLOADED}) { id name title } }", None, 4),
    ("query($id: ID!) { bootResource(id: $id) { id name sets { version size } } }", {}, 12),
    ("{ bootSources { id url selections { os release arches } } }", None, 8),
    ("{ importStatus { importing } }", None, 4),
)
_REST_READS: tuple[tuple[str, int], ...] = (
    ("/api/v1/boot-resources", 14),
    ("/api/v1/boot-resources?expand=sets", 4),
    ("/api/v1/boot-resources/{id}", 14),
    ("/api/v1/boot-sources", 8),
    ("/api/v1/boot-sources/1/selections", 6),
    ("/api/v1/boot-resources/import", 4),
)
WRITE_WEIGHT = 2
"""Of every 100 requests, about this many are writes (a source's URL, by REST or GraphQL)."""


@dataclass(frozen=True, slots=True)
class Request:
    kind: str
    """"graphql", "rest" or "write": how the figures are broken down."""
    data: bytes


@dataclass
class Tally:
    """What the clients saw: latency of every answer, statuses, and the first few failures."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def fail(self, reason: str) -> None:
        self.statuses[0] += 1
        if len(self.failures) < 10:
            self.failures.append(reason)


def _get(host: str, port: int, path: str, authorization: str | None) -> bytes:
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode()


def _send(
    host: str, port: int, method: str, path: str, body: object, authorization: str | None
) -> bytes:
    data = json.dumps(body).encode()
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def build_mix(
    host: str,
    port: int,
    resource_ids: Sequence[int],
    write_source: int,
    authorization: str | None = AUTHORIZATION,
) -> list[Request]:
    """Every request of the mix, repeated by its weight (a uniform pick follows the weights).
    Writes change `write_source`'s URL, so they invalidate what source reads have cached."""
    mix: list[Request] = []
    for query, variables, weight in _GRAPHQL_QUERIES:
        for i in range(weight):
            values = (
                {"id": str(resource_ids[i % len(resource_ids)])} if variables is not None else {}
            )
            body = {"query": query, "variables": values}
            mix.append(
                Request("graphql", _send(host, port, "POST", "/graphql", body, authorization))
            )
    for path, weight in _REST_READS:
        for i in range(weight):
            concrete = path.format(id=resource_ids[i % len(resource_ids)])
            mix.append(Request("rest", _get(host, port, concrete, authorization)))
    update = """mutation($id: ID!, $url: String!) {
      updateBootSource(id: $id, input: {url: $url}) { errors { message } } }"""
    for i in range(WRITE_WEIGHT):
        url = f"http://load-{i}.example.com/"
        if i % 2:
            path = f"/api/v1/boot-sources/{write_source}"
            data = _send(host, port, "PATCH", path, {"url": url}, authorization)
        else:
            variables = {"id": str(write_source), "url": url}
            body = {"query": update, "variables": variables}
            data = _send(host, port, "POST", "/graphql", body, authorization)
        mix.append(Request("write", data))
    return mix


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    if match := _CONTENT_LENGTH.search(head):
        return status, await reader.readexactly(int(match.group(1)))
    if _CHUNKED.search(head):
        chunks: list[bytes] = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return status, b"".join(chunks)
    return status, b""


async def drive(
    host: str, port: int, mix: Sequence[Request], *, clients: int, seconds: float, seed: int = 1
) -> Tally:
    """`clients` keep-alive connections sending requests picked from `mix` back to back for
    `seconds`. A GraphQL answer with errors counts as a failure, as a non-2xx status does."""
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def client(number: int) -> None:
        pick = random.Random(seed * 1000 + number)  # nosec B311  # a load mix, not a secret
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                request = pick.choice(mix)
                started = time.perf_counter()
                writer.write(request.data)
                try:
                    status, body = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    tally.fail(f"{request.kind}: {type(exc).__name__}")
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                tally.latencies.append(time.perf_counter() - started)
                tally.kinds[request.kind] += 1
                if request.kind != "rest" and b'"errors":[{' in body:
                    tally.fail(f"{request.kind}: {body[:200]!r}")
                else:
                    tally.statuses[status] += 1
                    if not 200 <= status < 300 and len(tally.failures) < 10:
                        tally.failures.append(f"{request.kind} {status}: {body[:200]!r}")
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    tally.seconds = time.perf_counter() - started
    return tally


_CACHE_LINE = re.compile(
    r'^maas_gateway_cache_requests_total\{family="[^"]+",outcome="(\w+)"\} ([0-9.e+]+)$', re.M
)


def cache_lookups(gateway_url: str, authorization: str | None = AUTHORIZATION) -> Counter[str]:
    """Cache lookups so far by outcome (hit, miss, stale, coalesced), every family summed."""
    headers = {"Authorization": authorization} if authorization else {}
    text = httpx.get(f"{gateway_url}/metrics", headers=headers, timeout=10).text
    counts: Counter[str] = Counter()
    for outcome, value in _CACHE_LINE.findall(text):
        counts[outcome] += int(float(value))
    return counts


def hit_ratio(before: Counter[str], after: Counter[str]) -> float:
    delta = after - before
    total = sum(delta.values())
    return delta["hit"] / total if total else 0.0


def prepare(gateway_url: str, authorization: str | None = AUTHORIZATION) -> tuple[list[int], int]:
    """Resource ids to read, and a boot source made for the writes to change."""
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=f"{gateway_url}/api/v1", headers=headers, timeout=30) as client:
        resources = client.get("/boot-resources")
        resources.raise_for_status()
        ids = [r["id"] for r in resources.json()][:20]
        source = {"url": "http://load-0.example.com/", "keyring_filename": "/k.gpg"}
        created = client.post("/boot-sources", json=source)
        created.raise_for_status()
        source_id: int = created.json()["id"]
    return ids, source_id


def _mib(n: int) -> float:
    return n / MiB


@benchmark("load")
def load_and_soak() -> list[Result]:
    with (
        simulator_process(latency_ms=LATENCY_MS, resources=50) as maas_url,
        server_process("gateway", maas_url) as gateway,
    ):
        warmup, tally, (start_rss, warm_rss, end_rss), cpu, ratio = _soak(gateway)
    errors = tally.errors + warmup.errors
    if errors:
        print("load failures:", *(warmup.failures + tally.failures)[:10], sep="\n  ")
    throughput = tally.requests / tally.seconds
    uncached = CLIENTS / (LATENCY_MS / 1000)
    label = f"{CLIENTS} clients x {SECONDS:g} s mixed load"
    p50, p99 = tally.percentile(0.5) * 1000, tally.percentile(0.99) * 1000
    return [
        Result(
            f"{label}: failed answers of {tally.requests + warmup.requests}",
            errors,
            0,
            0.0,
            "= 0",
            errors == 0,
            unit="",
        ),
        Result(
            f"{label}: throughput vs every request waiting on MAAS once, req/s",
            throughput,
            uncached,
            throughput / uncached,
            "info",
            None,
            unit="/s",
        ),
        # Against the wall time per request at that throughput: the ratio is the cores busy.
        Result(
            f"{label}: server CPU per request vs wall time per request, µs",
            cpu / tally.requests * 1e6,
            1e6 / throughput,
            cpu / tally.seconds,
            "info",
            None,
            unit="µs",
        ),
        Result(f"{label}: p50 latency vs MAAS's", p50, LATENCY_MS, p50 / LATENCY_MS, "info", None),
        Result(f"{label}: p99 latency vs MAAS's", p99, LATENCY_MS, p99 / LATENCY_MS, "info", None),
        *_rss_rows(label, start_rss, warm_rss, end_rss),
        Result(
            f"{label}: cache hit ratio (entity and response caches), %",
            ratio * 100,
            100,
            ratio,
            "info",
            None,
            unit="%",
        ),
    ]


def _soak(gateway: ServerProcess) -> tuple[Tally, Tally, tuple[int, int, int], float, float]:
    """(warm-up, measured run, RSS at start, after warm-up and at the end, the server's CPU
    seconds over the measured run, its cache hit ratio)."""
    host, port = gateway.host_port
    ids, source = prepare(gateway.url)
    mix = build_mix(host, port, ids, source)
    start_rss = gateway.rss_bytes()
    warmup = asyncio.run(drive(host, port, mix, clients=CLIENTS, seconds=WARMUP_SECONDS))
    warm_rss = gateway.rss_bytes()
    lookups = cache_lookups(gateway.url)
    cpu = gateway.cpu_seconds()
    tally = asyncio.run(drive(host, port, mix, clients=CLIENTS, seconds=SECONDS, seed=2))
    cpu = gateway.cpu_seconds() - cpu
    rss = (start_rss, warm_rss, gateway.rss_bytes())
    return warmup, tally, rss, cpu, hit_ratio(lookups, cache_lookups(gateway.url))


def _rss_rows(label: str, start: int, warm: int, end: int) -> list[Result]:
    growth = _mib(end - warm)
    return [
        Result(
            f"{label}: RSS after {WARMUP_SECONDS:g} s warm-up vs at start, MiB",
            _mib(warm),
            _mib(start),
            warm / start,
            "info",
            None,
            unit="MiB",
        ),
        Result(
            f"{label}: RSS at the end vs after warm-up, MiB",
            _mib(end),
            _mib(warm),
            end / warm,
            f"growth ≤ {MAX_RSS_GROWTH_MIB:g} MiB",
            growth <= MAX_RSS_GROWTH_MIB,
            unit="MiB",
        ),
    ]
