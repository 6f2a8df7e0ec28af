"""Circuit breakers per MAAS endpoint family: open on repeated failures, fail fast, probe,
close when MAAS recovers; their state is on /metrics."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from app.cli.server import BackgroundServer
from app.core.errors import NotFound, UpstreamTimeout, UpstreamUnavailable
from app.maas.breaker import Breaker, Breakers, BreakerState, State, family_of
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


def test_breaker_probes_and_recovers_again_on_a_second_outage() -> None:
    clock = Clock()
    breaker = Breaker("boot-sources", threshold=2, cooldown=10, clock=clock)
    for cycle in (1, 2):
        breaker.failed(probe=False)
        assert breaker.snapshot() == BreakerState(State.CLOSED, cycle - 1)
        breaker.failed(probe=False)
        assert breaker.snapshot() == BreakerState(State.OPEN, cycle)
        clock.now += 10
        assert breaker.acquire() is True  # each outage gets its probe
        with pytest.raises(UpstreamUnavailable):
            breaker.acquire()
        breaker.succeeded(probe=True)
        assert breaker.snapshot() == BreakerState(State.CLOSED, cycle)
        assert breaker.acquire() is False


def test_a_new_breaker_counts_failures_from_zero() -> None:
    breaker = Breaker("boot-sources", threshold=2, cooldown=10, clock=Clock())
    breaker.failed(probe=False)
    assert breaker.state is State.CLOSED
    breaker.failed(probe=False)
    assert breaker.state is State.OPEN


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 10), (-1, 10), (1, 0), (1, -0.5)])
def test_a_threshold_below_one_or_a_cooldown_of_zero_is_refused(
    threshold: int, cooldown: float
) -> None:
    with pytest.raises(ValueError, match=r"^threshold must be >= 1 and cooldown > 0$"):
        Breaker("boot-sources", threshold=threshold, cooldown=cooldown)
    assert Breaker("boot-sources", threshold=1, cooldown=0.001).state is State.CLOSED


def test_failing_fast_says_which_family_and_for_how_long() -> None:
    clock = Clock()
    breaker = Breaker("selections", threshold=1, cooldown=10, clock=clock)
    breaker.failed(probe=False)
    waits = []
    for now in (4.0, 9.5):
        clock.now = now
        with pytest.raises(UpstreamUnavailable) as raised:
            breaker.acquire()
        waits.append(raised.value.retry_after)
    assert waits == [pytest.approx(6), pytest.approx(0.5)]
    assert str(raised.value) == "MAAS selections calls are failing; not retried for 0.5 s"
    clock.now = 10.5
    assert breaker.acquire() is True
    with pytest.raises(UpstreamUnavailable) as raised:
        breaker.acquire()
    # The probe is in flight: the others are told to come back one cooldown later.
    assert raised.value.retry_after == 10
    assert str(raised.value) == "MAAS selections calls are failing; not retried for 0.0 s"


def test_a_call_let_through_before_the_breaker_opened_closes_it_when_it_succeeds() -> None:
    breaker = Breaker("boot-resources", threshold=1, cooldown=10, clock=Clock())
    assert breaker.acquire() is False  # a slow call, in flight while another fails
    breaker.failed(probe=False)
    assert breaker.state is State.OPEN
    breaker.succeeded(probe=False)  # MAAS answered after all
    assert breaker.state is State.CLOSED
    assert breaker.acquire() is False


def test_guard_fails_fast_on_the_breakers_clock_and_probes_after_the_cooldown() -> None:
    clock = Clock()
    breakers = Breakers(threshold=1, cooldown=30, clock=clock)
    with pytest.raises(UpstreamUnavailable, match="MAAS down"), breakers.guard("boot-source read"):
        raise UpstreamUnavailable("MAAS down")
    clock.now = 29
    failing_fast = pytest.raises(UpstreamUnavailable, match=r"^MAAS boot-sources calls are failing")
    with failing_fast, breakers.guard("boot-sources read"):
        pytest.fail("an open breaker let a call through")
    clock.now = 30
    with breakers.guard("boot-sources read"):
        assert breakers.snapshot()["boot-sources"].state is State.HALF_OPEN
    assert breakers.snapshot()["boot-sources"] == BreakerState(State.CLOSED, 1)


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
        ("boot-resources stop_import", "import"),
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
