"""Compiled plans: the nested query executed over warm caches, compiled against graphql-core on
the same objects and against the gateway without plans; compile time and memory per plan."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

from graphql import Executor, parse

from app.graphql.plans import Plans, _Compiler
from app.graphql.schema import build_schema
from app.main import create_app
from bench import Result, benchmark, cpu_row
from bench.graphql import NESTED, RESOURCES, _execute
from bench.serve import gateway_settings
from bench.upstream import simulator_process


@benchmark("graphql-plans")
def plans(rounds: int = 300) -> list[Result]:
    """CPU per executed nested query (warm entity caches, no stored answers): with compiled
    plans against graphql-core on the same objects, and against the same gateway with
    graphql_max_plans=0 (today's executor) in the same run."""
    with simulator_process(latency_ms=0, resources=RESOURCES) as maas_url:
        return asyncio.run(_plans(maas_url, rounds))


async def _plans(maas_url: str, rounds: int) -> list[Result]:
    with gateway_settings(maas_url, response_cache_ttl=0) as settings:
        compiled_app = create_app(settings)
        compiled = (await _execute(compiled_app, rounds))[0]
        split = compiled_app.state.schema.plans.counts()[0]
    if split["fallback"] or not split["compiled"]:
        raise RuntimeError(f"the nested query was not compiled: {split}")
    with gateway_settings(maas_url, response_cache_ttl=0, graphql_max_plans=0) as settings:
        reference = (await _execute(create_app(settings), rounds))[0]
    return [
        cpu_row(
            f"nested query over {RESOURCES} warm resources, compiled plan vs graphql-core on "
            "the same objects, CPU ms per request",
            compiled.figure,
            compiled.baseline,
            0.25,
        ),
        Result(
            "the same, throughput with response caches off (1 / CPU), req/s vs graphql_max_plans=0",
            1000 / compiled.figure,
            1000 / reference.figure,
            reference.figure / compiled.figure,
            "≥ 4x",
            reference.figure / compiled.figure >= 4,
            "req/s",
        ),
        Result(
            "the same without plans (graphql_max_plans=0) vs graphql-core, CPU ms per request",
            reference.figure,
            reference.baseline,
            reference.ratio,
            "info",
            None,
        ),
        *_compile_figures(),
    ]


def _compile_figures(documents: int = 200) -> list[Result]:
    """Compile time per new document, and the memory a cached plan holds (the parsed
    document itself not counted: the parse cache keeps it either way)."""
    schema = build_schema()._schema
    texts = [NESTED.replace("query Nested", f"query Nested{i}") for i in range(documents)]
    parsed = [parse(text) for text in texts]
    executors = [Executor.build(schema, document, raw_variable_values={}) for document in parsed]
    started = time.process_time()
    for executor in executors:
        _Compiler(executor).operation()  # type: ignore[arg-type]
    compile_us = (time.process_time() - started) / documents * 1e6
    store = Plans(documents)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for document in parsed:
        store.prepare(schema, document)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    per_plan = grown / len(store)
    return [
        Result(
            "compile time per new document (the nested query), µs",
            compile_us,
            0.0,
            0.0,
            "info",
            None,
            "µs",
        ),
        Result(
            "memory per cached plan (the nested query, under its two keys), KiB",
            per_plan / 1024,
            0.0,
            0.0,
            "info",
            None,
            "KiB",
        ),
    ]
