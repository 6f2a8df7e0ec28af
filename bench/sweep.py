"""The cost sweep: the cold nested query over 10, 50, 200 and 1,000 resources at 20 ms, at
fan-out bounds of 8, 32 and 128. Wall time, CPU, MAAS calls and peak RSS at each point, the bare
aiohttp floor beside each, as a table and a plot (docs/benchmarks-sweep.png)."""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from matplotlib.figure import Figure

from bench import Result, Section, benchmark, cold
from bench.asgi import AUTHORIZATION
from bench.upstream import simulator_process

SIZES = (10, 50, 200, 1000)
BOUNDS = (8, 32, 128)
PLOT = "benchmarks-sweep.png"
MiB = 1024 * 1024
SHIPPED_MAX_FANOUT = 500


@dataclass(frozen=True, slots=True)
class Point:
    resources: int
    bound: int
    gateway: cold.Run
    floor: cold.Run
    peak_rss: int
    """The gateway process's VmHWM after its queries: start-up included, a process per point."""

    @property
    def ideal_ms(self) -> float:
        """The critical path: the list, then the details in waves of `bound`."""
        return (1 + math.ceil(self.resources / self.bound)) * cold.LATENCY_MS

    @property
    def cpu_per_call_us(self) -> float:
        return self.gateway.cpu_ms / self.gateway.maas_calls * 1000


def _rounds(resources: int) -> int:
    # About the same MAAS calls per point, so the sweep stays within two minutes on 2 cores.
    return max(3, min(10, 1000 // resources))


def _settings(resources: int, bound: int) -> dict[str, str]:
    """The fan-out bound under test. The client's own bounds (64 in flight, 100 connections)
    would cap a larger one, and max_fanout (500) refuses 1,000 resources: raised to fit."""
    return {
        "MAAS_GATEWAY_FANOUT_CONCURRENCY": str(bound),
        "MAAS_GATEWAY_MAAS_MAX_CONCURRENCY": str(max(64, bound)),
        "MAAS_GATEWAY_MAAS_MAX_CONNECTIONS": str(max(100, bound)),
        "MAAS_GATEWAY_MAX_FANOUT": str(max(SHIPPED_MAX_FANOUT, resources)),
    }


def measure_point(maas_url: str, resources: int, bound: int) -> Point:
    with cold.cold_gateway(maas_url, **_settings(resources, bound)) as gateway:

        async def run() -> tuple[cold.Run, cold.Run]:
            async with cold.Floor(maas_url, in_flight=bound) as floor:
                return await cold.measure(
                    gateway,
                    floor,
                    maas_url,
                    resources=resources,
                    rounds=_rounds(resources),
                    warmup=1,
                )

        measured, floor = cold.run(run())
        peak = gateway.rss_bytes("VmHWM")
    if measured.maas_calls != 1 + resources:
        raise RuntimeError(f"{resources} resources cost {measured.maas_calls:g} MAAS calls")
    return Point(resources, bound, measured, floor, peak)


def _first_error(maas_url: str, **settings: str) -> str:
    """The first error a gateway with these settings answers to the nested query, as
    `CODE: message`."""
    with cold.cold_gateway(maas_url, **settings) as gateway:
        answer = httpx.post(
            f"{gateway.url}/graphql",
            content=orjson.dumps({"query": cold.NESTED}),
            headers={"Authorization": AUTHORIZATION, "Content-Type": "application/json"},
            timeout=120,
        ).json()
    errors: list[dict[str, Any]] = answer.get("errors") or []
    if not errors:
        return "no error: answered in full"
    code = errors[0].get("extensions", {}).get("code", "?")
    more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
    return f"{code}: {errors[0]['message']}{more}"


@benchmark("cost-sweep")
def sweep() -> list[Result | Section]:
    points: list[Point] = []
    refusals: dict[str, str] = {}
    for resources in SIZES:
        with simulator_process(latency_ms=cold.LATENCY_MS, resources=resources) as maas_url:
            for bound in BOUNDS:
                point = measure_point(maas_url, resources, bound)
                points.append(point)
                print(
                    f"  {resources} resources, bound {bound}: {point.gateway.median_ms:.0f} ms,"
                    f" {point.gateway.cpu_ms:.0f} ms CPU (floor {point.floor.cpu_ms:.0f})",
                    file=sys.stderr,
                    flush=True,
                )
            if resources > SHIPPED_MAX_FANOUT:
                refusals["shipped"] = _first_error(maas_url)
                refusals["estimate"] = _first_error(maas_url, MAAS_GATEWAY_GRAPHQL_MAX_COST="1")
    return [*_summary(points), Section("Cost sweep", _markdown(points, refusals), _plot(points))]


def _summary(points: list[Point]) -> list[Result]:
    """For the main table: per bound, whether the CPU per MAAS call holds as the work grows."""
    at = {(p.resources, p.bound): p for p in points}
    small, large = SIZES[1], SIZES[-1]
    rows = []
    for bound in BOUNDS:
        big, base = at[large, bound], at[small, bound]
        rows.append(
            Result(
                f"cost sweep, fan-out bound {bound}: gateway CPU per MAAS call at {large:,} "
                f"resources vs at {small}, µs",
                big.cpu_per_call_us,
                base.cpu_per_call_us,
                big.cpu_per_call_us / base.cpu_per_call_us,
                "info",
                None,
                unit="µs",
            )
        )
    return rows


def _markdown(points: list[Point], refusals: dict[str, str]) -> str:
    header = (
        "| resources | fan-out bound | wall ms | ideal ms | wall / ideal | CPU ms per query "
        "| floor CPU ms | CPU / floor | CPU µs per MAAS call | MAAS calls per query "
        "| peak RSS MiB |"
    )
    rows = [
        f"| {p.resources:,} | {p.bound} | {p.gateway.median_ms:.1f} | {p.ideal_ms:.0f} "
        f"| {p.gateway.median_ms / p.ideal_ms:.2f}x | {p.gateway.cpu_ms:.1f} "
        f"| {p.floor.cpu_ms:.1f} | {p.gateway.cpu_ms / p.floor.cpu_ms:.2f}x "
        f"| {p.cpu_per_call_us:.0f} | {p.gateway.maas_calls:g} | {p.peak_rss / MiB:.0f} |"
        for p in points
    ]
    return "\n".join(
        [
            f"The cold nested query (`bench/cold.py`) over {', '.join(f'{n:,}' for n in SIZES)}"
            f" resources at {cold.LATENCY_MS:g} ms, at fan-out bounds of"
            f" {', '.join(map(str, BOUNDS))} (`MAAS_GATEWAY_FANOUT_CONCURRENCY`), one gateway"
            " process per point; the floor is a bare aiohttp client making the same GETs with"
            " as many in flight. Ideal: the list, then the details in waves of the bound. The"
            " client's own bounds are raised to the fan-out bound where it is larger, and"
            f" `MAAS_GATEWAY_MAX_FANOUT` to {SIZES[-1]:,} at {SIZES[-1]:,} resources.",
            "",
            f"At {SIZES[-1]:,} resources with the shipped limits the query is refused by"
            f" `max_fanout` ({SHIPPED_MAX_FANOUT}), not by the cost limit:"
            f" `{refusals.get('shipped', 'not measured')}`. The cost limit (1000) passes it:"
            " each list is assumed to hold 50 items, so its estimate does not grow with the"
            f" real count (with the limit at 1: `{refusals.get('estimate', 'not measured')}`).",
            "",
            f"![wall time, CPU, CPU per MAAS call and peak RSS by resources and bound]({PLOT})",
            "",
            header,
            "|" + "---|" * header.count(" | ") + "---|",
            *rows,
        ]
    )


_Value = Callable[[Point], float]
_PANELS: tuple[tuple[str, _Value, _Value | None, bool], ...] = (
    (
        "wall ms per query (dashed: ideal)",
        lambda p: p.gateway.median_ms,
        lambda p: p.ideal_ms,
        True,
    ),
    (
        "CPU ms per query (dashed: aiohttp floor)",
        lambda p: p.gateway.cpu_ms,
        lambda p: p.floor.cpu_ms,
        True,
    ),
    ("gateway CPU µs per MAAS call", lambda p: p.cpu_per_call_us, None, False),
    ("gateway peak RSS MiB", lambda p: p.peak_rss / MiB, None, False),
)
"""Each panel: its title, the gateway's value, a baseline drawn dashed, a log y axis."""


def _plot(points: list[Point]) -> dict[str, bytes]:
    figure = Figure(figsize=(11, 8), layout="constrained")
    for axes, (title, value, baseline, log) in zip(
        figure.subplots(2, 2).flat, _PANELS, strict=True
    ):
        for bound in BOUNDS:
            line = [p for p in points if p.bound == bound]
            sizes = [p.resources for p in line]
            drawn = axes.plot(sizes, [value(p) for p in line], marker="o", label=f"bound {bound}")
            if baseline is not None:
                colour = drawn[0].get_color()
                axes.plot(sizes, [baseline(p) for p in line], linestyle="--", color=colour)
        axes.set_xscale("log")
        if log:
            axes.set_yscale("log")
        else:
            axes.set_ylim(bottom=0)
        axes.set_title(title)
        axes.set_xlabel("boot resources")
        axes.set_xticks(list(SIZES), [f"{n:,}" for n in SIZES])
        axes.grid(True, alpha=0.3)
        axes.legend()
    figure.suptitle(f"Cold nested query at {cold.LATENCY_MS:g} ms per MAAS call")
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=90, metadata={"Software": None})
    return {PLOT: png.getvalue()}
