"""`make bench-check`: the CPU-ratio figures in short runs with generous bounds, so a change that
doubles the CPU per MAAS call or per answer fails, on a fast core or a slow one. It times no
wall clock and is not part of `make test`; exits 1 when a bound fails.

Each bound sits about 1.5 times above the ratio measured when it was set (in the comments;
docs/benchmarks.md has the full runs): room for a short run's noise, none for a doubling.
Lower them as the figures come down."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable

from app.maas import DEFAULT_BACKEND
from bench import Result, at_most, cold, fanout, format_table, graphql
from bench.upstream import simulator_process


def _stored() -> list[Result]:
    return graphql.response_cache(seconds=1.0, rounds=3)


def _execution() -> list[Result]:
    return graphql.execution(rounds=200)


def _client() -> list[Result]:
    return fanout.run(backends=(DEFAULT_BACKEND,), rounds=(8, 1))


def _cold() -> list[Result]:
    with simulator_process(latency_ms=cold.LATENCY_MS, resources=cold.RESOURCES) as maas_url:
        gateway, floor = graphql.cold_figures(maas_url, rounds=8)
    name = "cold nested query, gateway CPU ms vs the bare aiohttp client's"
    return [Result(name, gateway.cpu_ms, floor.cpu_ms, gateway.cpu_ms / floor.cpu_ms, "", None)]


CHECKS: tuple[tuple[Callable[[], list[Result]], str, float], ...] = (
    (_stored, "from the response cache", 2.2),  # 1.21x-1.73x (2026-12-08)
    (_execution, "warm resources, CPU", 0.6),  # 0.31x-0.37x, with compiled plans
    (_client, "client CPU", 3.0),  # 1.73x-1.95x; 4.28x with the client's CPU per call doubled
    (_cold, "gateway CPU", 3.4),  # 2.24x-2.37x; 5.11x with the client's CPU per call doubled
)
"""(a short run, the name of its CPU row, the generous bound on that row's ratio)."""


def main() -> int:
    results: list[Result] = []
    for run, row, bound in CHECKS:
        print(f"running {run.__name__.strip('_')} ...", file=sys.stderr, flush=True)
        found = [r for r in run() if row in r.name and "CPU" in r.name]
        if len(found) != 1:
            raise RuntimeError(f"{run.__name__} gave {len(found)} rows named like {row!r}")
        target, passed = at_most(found[0].ratio, bound)
        results.append(dataclasses.replace(found[0], target=target, passed=passed))
    print(format_table(results))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 1 if any(r.passed is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
