"""REST benchmarks: a 1 GiB custom-image upload through the gateway against uploading straight
to MAAS, and a cached expanded list against a bare ASGI app sending the same bytes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx

from app.maas import MaasClient, MaasCredentials
from bench import Result, at_least, at_most, benchmark
from bench.asgi import AUTHORIZATION, get_request
from bench.serve import ServerProcess, against_bare, server_process
from bench.upstream import ADMIN_KEY, simulator_process

MiB = 1024 * 1024
IMAGE_SIZE = 1024 * MiB
BLOCK = 4 * MiB


def _image() -> tuple[bytes, str]:
    """One random block repeated to 1 GiB (generating 1 GiB of randomness would dominate)."""
    block = os.urandom(BLOCK)
    digest = hashlib.sha256()
    for _ in range(IMAGE_SIZE // BLOCK):
        digest.update(block)
    return block, digest.hexdigest()


def _blocks(block: bytes) -> Iterator[bytes]:
    for _ in range(IMAGE_SIZE // BLOCK):
        yield block


async def _ablocks(block: bytes) -> AsyncIterator[bytes]:
    for chunk in _blocks(block):
        yield chunk


@benchmark("rest-upload")
def upload() -> list[Result]:
    # Two different images: MAAS skips an upload whose content it already holds (§5.4).
    direct_block, direct_sha256 = _image()
    block, sha256 = _image()
    with simulator_process(latency_ms=0, resources=50) as maas_url:
        direct_cpu = time.process_time()
        direct_s = asyncio.run(_direct(maas_url, direct_block, direct_sha256))
        direct_cpu = time.process_time() - direct_cpu
        gateway_s, gateway_cpu, growth = _through_gateway(maas_url, block, sha256)
    throughput = IMAGE_SIZE / MiB / gateway_s
    direct = IMAGE_SIZE / MiB / direct_s
    ratio = throughput / direct
    target, passed = at_least(ratio, 0.7)
    rss_target, rss_passed = at_most(growth / MiB, 64)
    return [
        Result(
            "1 GiB upload through the gateway vs straight to MAAS, MiB/s",
            throughput,
            direct,
            ratio,
            target,
            passed,
            unit="MiB/s",
        ),
        # The gateway receives the image and sends it on; the direct client only sends it.
        Result(
            "1 GiB upload, gateway CPU s vs a MaasClient uploading straight to MAAS",
            gateway_cpu,
            direct_cpu,
            gateway_cpu / direct_cpu,
            "info",
            None,
            unit="s",
        ),
        Result(
            "peak RSS growth of the gateway during the 1 GiB upload, MiB",
            growth / MiB,
            64,
            growth / MiB / 64,
            f"≤ 64 MiB ({rss_target})",
            rss_passed,
            unit="MiB",
        ),
    ]


def _through_gateway(maas_url: str, block: bytes, sha256: str) -> tuple[float, float, int]:
    """(seconds, server CPU seconds, peak RSS growth in bytes) of a 1 GiB upload through a
    gateway process."""
    with server_process("gateway", maas_url) as gateway:
        base_rss = gateway.rss_bytes()
        peak = _PeakRss(gateway)
        with peak:
            cpu = gateway.cpu_seconds()
            started = time.perf_counter()
            response = httpx.post(
                f"{gateway.url}/api/v1/boot-resources",
                params={
                    "name": "bench-gateway-upload",
                    "architecture": "amd64/generic",
                    "size": str(IMAGE_SIZE),
                    "sha256": sha256,
                },
                headers={"Content-Length": str(IMAGE_SIZE), "Authorization": AUTHORIZATION},
                content=_blocks(block),
                timeout=600,
            )
            seconds = time.perf_counter() - started
            cpu = gateway.cpu_seconds() - cpu
        if response.status_code != 201:
            raise RuntimeError(f"gateway upload failed: {response.text[:300]}")
        newest = response.json()["sets"][0]["files"][0]
        if not newest["complete"] or newest["sha256"] != sha256:
            raise RuntimeError(f"the gateway upload did not complete: {newest}")
        return seconds, cpu, max(peak.peak, gateway.rss_bytes("VmHWM")) - base_rss


async def _direct(maas_url: str, block: bytes, sha256: str) -> float:
    async with MaasClient(maas_url, MaasCredentials.from_key(ADMIN_KEY)) as client:
        started = time.perf_counter()
        await client.upload_boot_resource(
            "bench-direct-upload", "amd64/generic", _ablocks(block), IMAGE_SIZE, sha256
        )
        return time.perf_counter() - started


class _PeakRss:
    """Samples a process's RSS while a block runs (VmHWM alone would include start-up)."""

    def __init__(self, server: ServerProcess) -> None:
        self._server = server
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._server.rss_bytes())

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@benchmark("rest-cached-list")
def cached_list() -> list[Result]:
    path = "/api/v1/boot-resources?expand=sets"
    return against_bare(
        lambda host, port: get_request(host, port, path),
        label=f"cached GET {path} ({{kib}} KiB), req/s",
        minimum=0.35,
    )
