"""Benchmarks of the gateway's hot paths: a registry of functions that return result rows."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

MODULES: tuple[str, ...] = (
    "bench.fanout",
    "bench.graphql",
    "bench.plans",
    "bench.hostile",
    "bench.rest",
    "bench.load",
    "bench.replicas",
    "bench.idle_sockets",
    "bench.subscribers",
    "bench.sweep",
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


@dataclass(frozen=True, slots=True)
class Section:
    """A part of docs/benchmarks.md of its own after the table (a benchmark's detail: its own
    table, a plot); `files` are written beside the report, named relative to docs/."""

    title: str
    markdown: str
    files: dict[str, bytes] = field(default_factory=dict)


Benchmark = Callable[[], Sequence[Result | Section]]
REGISTRY: dict[str, Benchmark] = {}


B = TypeVar("B", bound=Benchmark)


def benchmark(name: str) -> Callable[[B], B]:
    """Register a benchmark under `name`; `python -m bench` runs them in registration order
    (with no arguments: parameters with defaults are for shorter runs, e.g. bench/check.py)."""

    def register(function: B) -> B:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = function
        return function

    return register


def at_most(figure: float, bound: float) -> tuple[str, bool]:
    return f"≤ {bound:g}x", figure <= bound


def at_least(figure: float, bound: float) -> tuple[str, bool]:
    return f"≥ {bound:g}x", figure >= bound


def cpu_row(
    name: str, figure: float, baseline: float, bound: float | None = None, unit: str = "ms"
) -> Result:
    """A CPU figure against its same-run baseline: at most `bound` times it, or for
    information when the issue sets no bound."""
    ratio = figure / baseline if baseline else float("inf")
    if bound is None:
        return Result(name, figure, baseline, ratio, "info", None, unit)
    target, passed = at_most(ratio, bound)
    return Result(name, figure, baseline, ratio, target, passed, unit)


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
