"""Hostile documents: what refusing a fragment fan-out costs, and what a stream of them does to
an ordinary caller's latency."""

from __future__ import annotations

import asyncio
import statistics
import time

import orjson
from graphql import parse

from app.main import create_app
from bench import Result, at_most, benchmark, cpu_row
from bench.asgi import call, post_request
from bench.serve import gateway_settings, server_process
from bench.upstream import simulator_process

LEVELS = 200
REFUSAL_BOUND_MS = 5.0
CANARY = orjson.dumps({"query": "{ bootSources { id url } }"})
CANARY_REQUESTS = 2000
ATTACKS_PER_SECOND = 50


def fan_out(levels: int = LEVELS, salt: int = 0) -> bytes:
    """Fragments each spreading the next twice, an alias at the bottom: 2**levels aliases. The
    salt names the alias, so that each document is new to the parse and validation caches."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    document = f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ a{salt}: __typename }}"
    return orjson.dumps({"query": document})


@benchmark("graphql-hostile")
def hostile() -> list[Result]:
    with simulator_process(latency_ms=0, resources=50) as maas_url:
        results = [
            *asyncio.run(_refusal(maas_url, max_tokens=None)),
            *asyncio.run(_refusal(maas_url, max_tokens=5000)),
        ]
        results += _canary(maas_url)
    return results


async def _refusal(maas_url: str, *, max_tokens: int | None) -> list[Result]:
    """CPU and wall time per refusal of a new 200-level fan-out, in process: with the default
    token limit it is refused by the token count, with a limit that lets it parse by the alias
    limit."""
    overrides = {} if max_tokens is None else {"graphql_max_tokens": max_tokens}
    rounds = 200
    with gateway_settings(maas_url, **overrides) as settings:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            status, answer = await call(app, "/graphql", fan_out())
            if b"GRAPHQL_VALIDATION" not in answer:
                raise RuntimeError(f"not refused ({status}): {answer[:200]!r}")
            bodies = [fan_out(salt=n) for n in range(1, rounds + 1)]
            cpu, wall = time.process_time(), time.perf_counter()
            for body in bodies:
                await call(app, "/graphql", body)
            cpu_ms = (time.process_time() - cpu) * 1000 / rounds
            wall_ms = (time.perf_counter() - wall) * 1000 / rounds
    if max_tokens is None:
        # The shipped token limit refuses it before any parse: the 5 ms bound.
        return [
            _ratio(
                f"{LEVELS}-level fan-out refused by the token count, {kind} ms",
                figure,
                REFUSAL_BOUND_MS,
                1.0,
            )
            for kind, figure in (("CPU", cpu_ms), ("wall", wall_ms))
        ]
    # With a token limit that lets it parse, graphql-core's parse is the floor; the limits and
    # the pipeline must add less than the parse itself.
    parse_ms = _parse_cpu_ms(bodies)
    return [
        _ratio(
            f"{LEVELS}-level fan-out refused by the alias limit ({max_tokens} tokens allowed), "
            f"{kind} ms vs graphql-core's parse alone",
            figure,
            parse_ms,
            2.0,
        )
        for kind, figure in (("CPU", cpu_ms), ("wall", wall_ms))
    ]


def _parse_cpu_ms(bodies: list[bytes]) -> float:
    documents = [orjson.loads(body)["query"] for body in bodies]
    started = time.process_time()
    for document in documents:
        parse(document)
    return (time.process_time() - started) * 1000 / len(documents)


def _ratio(name: str, figure: float, baseline: float, bound: float) -> Result:
    target, passed = at_most(figure / baseline, bound)
    return Result(name, figure, baseline, figure / baseline, target, passed)


def _canary(maas_url: str) -> list[Result]:
    """p99 of a canary query over its own connection, alone and while fan-outs arrive at
    ATTACKS_PER_SECOND on another connection; and the server's CPU per canary request in
    each run (the refusals' share, for information)."""
    with server_process("gateway", maas_url) as gateway:
        host, port = gateway.host_port
        canary = post_request(host, port, "/graphql", CANARY)
        attacks = [post_request(host, port, "/graphql", fan_out(salt=n)) for n in range(997)]
        start = gateway.cpu_seconds()
        quiet = asyncio.run(_p99(host, port, canary, None))
        middle = gateway.cpu_seconds()
        attacked = asyncio.run(_p99(host, port, canary, attacks))
        quiet_cpu, attacked_cpu = middle - start, gateway.cpu_seconds() - middle
    ratio = attacked / quiet
    target, passed = at_most(ratio, 1.5)
    return [
        Result(
            f"canary query p99 while {ATTACKS_PER_SECOND} fan-outs/s arrive vs none",
            attacked,
            quiet,
            ratio,
            target,
            passed,
        ),
        cpu_row(
            f"server CPU ms per canary request while {ATTACKS_PER_SECOND} fan-outs/s arrive "
            "vs none",
            attacked_cpu / CANARY_REQUESTS * 1000,
            quiet_cpu / CANARY_REQUESTS * 1000,
        ),
    ]


async def _p99(host: str, port: int, canary: bytes, attacks: list[bytes] | None) -> float:
    stop = asyncio.Event()
    attacker = asyncio.create_task(_attack(host, port, attacks, stop)) if attacks else None
    reader, writer = await asyncio.open_connection(host, port)
    latencies: list[float] = []
    try:
        for _ in range(CANARY_REQUESTS):
            started = time.perf_counter()
            writer.write(canary)
            await _answer(reader)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        writer.close()
        stop.set()
        if attacker is not None:
            refused = await attacker
            if not refused:
                raise RuntimeError("no fan-out was refused during the canary's run")
    return statistics.quantiles(latencies, n=100)[98]


async def _attack(host: str, port: int, requests: list[bytes], stop: asyncio.Event) -> int:
    """Sends a different fan-out each time, so that no cache answers for the validator."""
    reader, writer = await asyncio.open_connection(host, port)
    refused = 0
    try:
        while not stop.is_set():
            writer.write(requests[refused % len(requests)])
            if b"GRAPHQL_VALIDATION" in await _answer(reader):
                refused += 1
            await asyncio.sleep(1 / ATTACKS_PER_SECOND)
    finally:
        writer.close()
    return refused


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)
