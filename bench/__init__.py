"""Benchmarks of the gateway's hot paths: a registry of functions that return result rows."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

MODULES: tuple[str, ...] = (
    "bench.fanout",
    "bench.graphql",
    "bench.hostile",
    "bench.rest",
    "bench.load",
    "bench.replicas",
    "bench.idle_sockets",
    "bench.subscribers",
)
"""Every benchmark module; importing one registers its benchmarks."""


@dataclass(frozen=True, slots=True)
class Result:
    """One measured figure against its baseline; `ratio` is what the target bounds."""

    name: str
    figure: float
    baseline: float
    ratio: float
    target: str
    passed: bool | None
    """None for a figure reported for information, with no target of its own."""
    unit: str = "ms"


Benchmark = Callable[[], list[Result]]
REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str) -> Callable[[Benchmark], Benchmark]:
    """Register a benchmark under `name`; `python -m bench` runs them in registration order."""

    def register(function: Benchmark) -> Benchmark:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = function
        return function

    return register


def at_most(figure: float, bound: float) -> tuple[str, bool]:
    return f"≤ {bound:g}x", figure <= bound


def at_least(figure: float, bound: float) -> tuple[str, bool]:
    return f"≥ {bound:g}x", figure >= bound


def load(modules: Iterable[str] = MODULES) -> dict[str, Benchmark]:
    for module in modules:
        importlib.import_module(module)
    return REGISTRY


def format_table(results: Iterable[Result], style: Literal["text", "markdown"] = "text") -> str:
    """The results as a table: aligned text for a terminal, or Markdown for docs/."""
    header = ("benchmark", "figure", "baseline", "ratio", "target", "result")
    rows = [
        (
            r.name,
            f"{r.figure:.1f} {r.unit}",
            f"{r.baseline:.1f} {r.unit}",
            f"{r.ratio:.2f}x",
            r.target,
            "info" if r.passed is None else ("pass" if r.passed else "FAIL"),
        )
        for r in results
    ]
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
