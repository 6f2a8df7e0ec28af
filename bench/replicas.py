"""Three gateway replicas under one load, with and without the shared (Redis) cache.

Each replica is its own process, all behind one simulator and one redis-server (both invalidation
buses run; only the shared cache differs). The same reads go round the replicas for a few TTLs;
the figures are the calls MAAS received and the share of the reads (hit ratio) that never
reached MAAS, from any replica's own caches or the shared one.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import httpx

from bench import Result, at_most, benchmark, cpu_row
from bench.asgi import BENCH_TOKEN
from bench.serve import environment, server_process
from bench.upstream import simulator_process

REPLICAS = 3
RESOURCES = 30
LATENCY_MS = 5.0
ROUNDS = 4
TTL_S = 2.0
READS_PER_ROUND = 2
"""Each replica reads everything twice per TTL: the second pass is its own cache's."""
MAX_CALLS_RATIO = 0.4
"""Shared, the replicas should call MAAS about as often as one replica would: 1/3, with room."""


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server without persistence; yields its URL."""
    if shutil.which("redis-server") is None:
        raise RuntimeError(
            "the replicas benchmark needs redis-server (apt-get install redis-server)"
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", directory]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            child.kill()
            child.wait()


def _run(maas_url: str, redis_url: str, shared: bool) -> tuple[int, float, float]:
    """(MAAS calls, share of the load's reads answered without MAAS, the replicas' CPU ms per
    read) for one configuration."""
    simulator = maas_url.removesuffix("/MAAS")
    ttl = str(TTL_S)
    settings = {
        "MAAS_GATEWAY_REDIS_URL": redis_url,
        "MAAS_GATEWAY_REDIS_SHARED_CACHE": "true" if shared else "false",
        "MAAS_GATEWAY_CACHE_TTL_BOOT_RESOURCES": ttl,
        "MAAS_GATEWAY_CACHE_TTL_BOOT_RESOURCE": ttl,
        "MAAS_GATEWAY_CACHE_TTL_SELECTIONS": ttl,
        "MAAS_GATEWAY_CACHE_TTL_BOOT_SOURCES": ttl,
    }
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
    with (
        environment(**settings),
        contextlib.ExitStack() as stack,
        httpx.Client(headers=headers, verify=False, timeout=30) as client,
    ):
        replicas = [
            stack.enter_context(server_process("gateway", maas_url)) for _ in range(REPLICAS)
        ]
        urls = [replica.url for replica in replicas]
        for url in urls:
            deadline = time.monotonic() + 15
            while not client.get(f"{url}/readyz").json().get("redis", {}).get("connected"):
                if time.monotonic() > deadline:
                    raise RuntimeError("a replica did not connect to Redis")
                time.sleep(0.05)
        client.delete(f"{simulator}/_simulator/requests").raise_for_status()
        ids = [r["id"] for r in client.get(f"{urls[0]}/api/v1/boot-resources").json()]
        cpu = sum(replica.cpu_seconds() for replica in replicas)
        for _ in range(ROUNDS):
            started = time.monotonic()
            for _ in range(READS_PER_ROUND):
                for url in urls:
                    client.get(f"{url}/api/v1/boot-resources").raise_for_status()
                    for resource_id in ids:
                        client.get(f"{url}/api/v1/boot-resources/{resource_id}").raise_for_status()
                    client.get(f"{url}/api/v1/boot-sources/1/selections").raise_for_status()
            # The next round starts once this round's entries expired everywhere.
            time.sleep(max(0.0, TTL_S + 0.1 - (time.monotonic() - started)))
        cpu = sum(replica.cpu_seconds() for replica in replicas) - cpu
        counts = client.get(f"{simulator}/_simulator/requests").json()["counts"]
        calls = sum(count for path, count in counts.items() if "version" not in path)
    # Every read the load asked for: a list, each detail and the selections, per pass.
    reads = ROUNDS * READS_PER_ROUND * REPLICAS * (len(ids) + 2)
    return calls, 1 - calls / reads, cpu / reads * 1000


@benchmark("replicas")
def run() -> list[Result]:
    with (
        simulator_process(latency_ms=LATENCY_MS, resources=RESOURCES) as maas_url,
        redis_server() as redis_url,
    ):
        alone_calls, alone_hits, alone_cpu = _run(maas_url, redis_url, shared=False)
        shared_calls, shared_hits, shared_cpu = _run(maas_url, redis_url, shared=True)
    ratio = shared_calls / alone_calls
    target, passed = at_most(ratio, MAX_CALLS_RATIO)
    return [
        Result(
            f"MAAS calls of {REPLICAS} replicas, shared cache vs each alone",
            shared_calls,
            alone_calls,
            ratio,
            target,
            passed,
            unit="calls",
        ),
        Result(
            f"hit ratio (reads answered without MAAS), {REPLICAS} replicas, shared vs alone",
            100 * shared_hits,
            100 * alone_hits,
            shared_hits / alone_hits if alone_hits else 0.0,
            "",
            None,
            unit="%",
        ),
        cpu_row(
            f"CPU ms per read of {REPLICAS} replicas (servers, their idling between rounds "
            "included), shared cache vs each alone",
            shared_cpu,
            alone_cpu,
        ),
    ]
