"""The MAAS simulator in a child process, so its CPU never competes with the client measured.

Run as `python -m bench.upstream --latency-ms 20 --resources 50`: prints the MAAS URL on one
line, serves until its stdin closes. `--resources` is the length of the boot-resource list:
the simulator's seeded images are counted and topped up with generated uploads, or the last of
them deleted when fewer are asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

ADMIN_KEY = "BenchConsumerKey01:BenchTokenKey00001:BenchTokenSecret0000000000000001"
USER_KEY = "BenchUserConsumer1:BenchUserToken0001:BenchUserSecret00000000000000001"


@contextmanager
def url_child(module: str, *args: str) -> Iterator[tuple[str, int]]:
    """Run `python -m module args` (a server that prints its URL on one line and serves until
    its stdin closes); yield (URL, pid), stop it on exit."""
    child = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"{module} did not start (said {url!r})")
        yield url, child.pid
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextmanager
def simulator_process(*, latency_ms: float, resources: int) -> Iterator[str]:
    """Start the child, yield the simulator's MAAS URL, stop the child on exit."""
    with url_child("bench.upstream", f"--latency-ms={latency_ms}", f"--resources={resources}") as (
        url,
        _,
    ):
        yield url


async def _count_resources(url: str, keep: int | None = None) -> int:
    """The resources listed; with `keep`, those past the first `keep` deleted first."""
    from app.maas import MaasClient, MaasCredentials

    async with MaasClient(url, MaasCredentials.from_key(ADMIN_KEY)) as client:
        if keep is not None:
            for resource in (await client.list_boot_resources())[keep:]:
                await client.delete_boot_resource(resource.id)
        return len(await client.list_boot_resources())


def main() -> None:
    from app.cli.server import BackgroundServer
    from app.simulator import SimulatorConfig, create_simulator

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--resources", type=int, default=50)
    args = parser.parse_args()
    base = SimulatorConfig(admin_key=ADMIN_KEY, user_key=USER_KEY)
    with BackgroundServer(create_simulator(base)) as server:
        seeded = asyncio.run(_count_resources(f"{server.url}/MAAS"))
    config = dataclasses.replace(
        base, latency_ms=args.latency_ms, extra_resources=max(0, args.resources - seeded)
    )
    with BackgroundServer(create_simulator(config)) as server:
        url = f"{server.url}/MAAS"
        if asyncio.run(_count_resources(url, keep=args.resources)) != args.resources:
            raise SystemExit(f"the simulator did not come to {args.resources} resources")
        print(url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
