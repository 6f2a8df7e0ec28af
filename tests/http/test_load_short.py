"""The load test, short: 16 clients for a few seconds against a real gateway and simulator.
It checks correctness only (no failed answer, nothing leaked), never time."""

from __future__ import annotations

import asyncio

import httpx

from app.cli.server import BackgroundServer
from app.main import create_app
from bench.load import build_mix, cache_lookups, drive, hit_ratio, prepare
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings
from tests.leaks import LoopProbe, Resources

CLIENTS = 16
SECONDS = 6.0
SLACK = 4
"""Keep-alive connections to MAAS come and go with demand; a leak would grow with the
thousands of requests sent, so a few more open at the end than after warm-up is no leak."""


def test_mixed_load_has_no_failed_answers_and_leaks_nothing(simulator: BackgroundServer) -> None:
    app = create_app(gateway_settings(simulator.url, ADMIN_KEY))
    probe = LoopProbe(app)
    resources = Resources(httpx.URL(simulator.url).port or 80)
    with BackgroundServer(probe) as gateway:
        ids, source = prepare(gateway.url, authorization=None)
        mix = build_mix(gateway.host, gateway.port, ids, source, authorization=None)
        warmup = asyncio.run(drive(gateway.host, gateway.port, mix, clients=CLIENTS, seconds=1))
        assert warmup.errors == 0, warmup.failures
        before, tasks = resources.counts(), probe.tasks()
        lookups = cache_lookups(gateway.url, authorization=None)

        tally = asyncio.run(
            drive(gateway.host, gateway.port, mix, clients=CLIENTS, seconds=SECONDS, seed=2)
        )

        assert tally.errors == 0, tally.failures
        assert tally.requests > 10 * CLIENTS
        assert set(tally.kinds) == {"graphql", "rest", "write"}
        assert 0 < hit_ratio(lookups, cache_lookups(gateway.url, authorization=None)) < 1
        resources.assert_no_leaks(before, slack=SLACK)
        assert probe.tasks() <= tasks
