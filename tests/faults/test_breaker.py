"""Circuit breakers per MAAS endpoint family: open on repeated failures, fail fast, probe,
close when MAAS recovers; their state is on /metrics."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from app.cli.server import BackgroundServer
from app.core.errors import NotFound, UpstreamTimeout, UpstreamUnavailable
from app.maas.breaker import Breaker, Breakers, State, family_of
from tests.faults.conftest import GatewayFactory
from tests.gateway import set_faults, upstream_counts
from tests.leaks import Resources

COOLDOWN = 1.5
"""Long enough that the calls tripping the breaker finish before it half-opens, on a slow CI."""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = Clock()
    breaker = Breaker("boot-sources", threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        assert breaker.acquire() is False
        breaker.failed(probe=False)
    breaker.succeeded(probe=False)  # a success in between starts the count again
    for _ in range(3):
        breaker.acquire()
        breaker.failed(probe=False)
    assert breaker.snapshot().state is State.OPEN
    clock.now = 4
    with pytest.raises(UpstreamUnavailable) as raised:
        breaker.acquire()
    assert raised.value.retry_after == pytest.approx(6)


def test_breaker_lets_one_probe_through_after_the_cooldown() -> None:
    clock = Clock()
    breaker = Breaker("boot-sources", threshold=1, cooldown=10, clock=clock)
    breaker.failed(probe=False)
    clock.now = 10
    assert breaker.snapshot().state is State.HALF_OPEN
    assert breaker.acquire() is True
    with pytest.raises(UpstreamUnavailable):
        breaker.acquire()  # only one probe at a time
    breaker.failed(probe=True)
    assert breaker.snapshot().state is State.OPEN
    clock.now = 20
    assert breaker.acquire() is True
    breaker.succeeded(probe=True)
    assert breaker.snapshot().state is State.CLOSED
    assert breaker.acquire() is False
    assert breaker.opens == 2


def test_breaker_allows_a_new_probe_when_one_is_cancelled() -> None:
    clock = Clock()
    breaker = Breaker("upload", threshold=1, cooldown=1, clock=clock)
    breaker.failed(probe=False)
    clock.now = 1
    assert breaker.acquire() is True
    breaker.abandoned(probe=True)
    assert breaker.acquire() is True


def test_readiness_probe_calls_pass_no_breaker() -> None:
    breakers = Breakers(threshold=1, cooldown=60)
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable), breakers.guard("version read"):
            raise UpstreamUnavailable("MAAS is down")
    with breakers.guard("version read"):
        pass  # not failed fast: the probe sees MAAS come back at once
    assert set(breakers.snapshot()) == {
        "boot-resources",
        "boot-sources",
        "selections",
        "import",
        "upload",
    }


def test_guard_counts_only_failures_of_maas_itself() -> None:
    breakers = Breakers(threshold=2, cooldown=60)
    for _ in range(3):
        with pytest.raises(NotFound), breakers.guard("boot-source read"):
            raise NotFound("no such source")
    for _ in range(2):
        with pytest.raises(UpstreamTimeout), breakers.guard("boot-source read"):
            raise UpstreamTimeout("MAAS is slow")
    with pytest.raises(UpstreamUnavailable), breakers.guard("boot-source read"):
        pass
    with breakers.guard("boot-resource read"):
        pass  # another family
    assert breakers.snapshot()["boot-sources"].state is State.OPEN


@pytest.mark.parametrize(
    ("operation", "family"),
    [
        ("boot-resources read", "boot-resources"),
        ("boot-resource delete", "boot-resources"),
        ("boot-resource upload", "upload"),
        ("boot-resources is_importing", "import"),
        ("boot-resources import", "import"),
        ("boot-sources create", "boot-sources"),
        ("boot-source read", "boot-sources"),
        ("boot-source-selections read", "selections"),
        ("boot-source-selection update", "selections"),
        ("version read", "discovery"),
    ],
)
def test_operations_map_to_their_endpoint_family(operation: str, family: str) -> None:
    assert family_of(operation) == family


def breaker_states(url: str) -> dict[str, str]:
    text = httpx.get(f"{url}/metrics").text
    pattern = r'maas_gateway_upstream_breaker_state\{family="([^"]+)",state="([^"]+)"\} 1\.0'
    return dict(re.findall(pattern, text))


def test_breaker_fails_fast_while_open_and_closes_when_maas_recovers(
    simulator: BackgroundServer, start_gateway: GatewayFactory, resources: Resources
) -> None:
    gateway = start_gateway(
        maas_breaker_threshold=3,
        maas_breaker_cooldown=COOLDOWN,
        maas_retries=0,
        response_cache_ttl=0,
        cache_ttl_boot_sources=0.001,
        cache_stale_ttl=0,
    )
    sources = f"{gateway.url}/api/v1/boot-sources"
    assert httpx.get(sources).status_code == 200
    before = resources.counts()
    set_faults(simulator.url, {"path": "boot-sources", "status": 500})
    for _ in range(3):
        assert httpx.get(sources).json()["error"]["code"] == "UPSTREAM_BAD_RESPONSE"
    assert breaker_states(gateway.url)["boot-sources"] == "open"
    reached = upstream_counts(simulator.url)

    started = time.monotonic()
    response = httpx.get(sources)
    assert time.monotonic() - started < COOLDOWN
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert 0 <= int(response.headers["Retry-After"]) <= COOLDOWN + 1
    assert upstream_counts(simulator.url) == reached  # failed fast: MAAS was not asked
    resources_url = f"{gateway.url}/api/v1/boot-resources"
    assert httpx.get(resources_url).status_code == 200  # other families are unaffected

    time.sleep(COOLDOWN)
    assert httpx.get(sources).status_code == 502  # the probe failed: open again
    assert breaker_states(gateway.url)["boot-sources"] == "open"
    set_faults(simulator.url)
    time.sleep(COOLDOWN)
    assert breaker_states(gateway.url)["boot-sources"] == "half_open"
    assert httpx.get(sources).status_code == 200  # the probe succeeded: closed
    assert breaker_states(gateway.url)["boot-sources"] == "closed"
    assert httpx.get(sources).status_code == 200
    resources.assert_no_leaks(before)


def test_breaker_ignores_maas_client_errors(
    simulator: BackgroundServer, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(maas_breaker_threshold=2)
    for _ in range(4):
        assert httpx.get(f"{gateway.url}/api/v1/boot-sources/999999").status_code == 404
    assert breaker_states(gateway.url)["boot-sources"] == "closed"
