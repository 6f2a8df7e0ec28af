"""/livez and /readyz against the simulator: readiness follows MAAS, rides out one bad call,
falls back on the cache, and never needs credentials."""

from __future__ import annotations

import itertools
import socket
import time
from typing import Any

import httpx

from app.cli.server import BackgroundServer
from app.observability.health import UpstreamHealth
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings, running_gateway, set_faults, upstream_counts
from tests.observability_support import wait_for

VERSION = "GET /MAAS/api/2.0/version/"


def readyz(gateway: BackgroundServer) -> httpx.Response:
    return httpx.get(f"{gateway.url}/readyz", timeout=10)


def test_livez_answers_without_credentials(start_gateway: Any) -> None:
    gateway = start_gateway(anonymous_scopes="")
    assert httpx.get(f"{gateway.url}/api/v1/boot-sources").status_code == 401
    response = httpx.get(f"{gateway.url}/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "live"}
    assert response.headers["cache-control"] == "no-store"
    assert readyz(gateway).status_code in (200, 503)


def test_livez_answers_while_maas_is_down(start_gateway: Any, simulator: BackgroundServer) -> None:
    set_faults(simulator.url, {"status": 503})
    gateway = start_gateway(readiness_window=0.2, readiness_probe_interval=0.05)
    wait_for(lambda: readyz(gateway).status_code == 503)
    assert httpx.get(f"{gateway.url}/livez").status_code == 200


def test_readyz_is_ready_once_maas_answered(start_gateway: Any) -> None:
    gateway = start_gateway()
    wait_for(lambda: readyz(gateway).status_code == 200)
    body = readyz(gateway).json()
    assert body["status"] == "ready"
    assert body["reason"] == "MAAS answered recently"
    assert 0 <= body["maas"]["last_success_age_s"] < 60
    assert body["maas"]["window_s"] == 60
    assert body["cache"] == {"entries": 0, "servable_s": 420.0}


def test_readyz_is_unready_while_maas_has_never_answered(simulator: BackgroundServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings = gateway_settings(
        f"http://127.0.0.1:{closed_port}", ADMIN_KEY, readiness_probe_interval=0.05
    )
    with running_gateway(settings) as gateway:
        wait_for(lambda: readyz(gateway).json()["maas"]["consecutive_failures"] > 0)
        response = readyz(gateway)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unready"
    assert body["reason"] == "MAAS has not answered yet"
    assert body["maas"]["last_success_age_s"] is None
    assert body["maas"]["last_failure"] == "UPSTREAM_UNAVAILABLE"


def test_readyz_stays_ready_through_a_failed_call(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(maas_retries=0)
    wait_for(lambda: readyz(gateway).status_code == 200)
    set_faults(simulator.url, {"path": "boot-sources", "status": 503})
    assert httpx.get(f"{gateway.url}/api/v1/boot-sources").status_code == 503
    response = readyz(gateway)
    assert response.status_code == 200
    assert response.json()["maas"]["consecutive_failures"] == 1


def test_readyz_stays_ready_through_a_slow_call(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(maas_timeout=0.2, maas_retries=0)
    wait_for(lambda: readyz(gateway).status_code == 200)
    set_faults(simulator.url, {"path": "boot-sources", "hang": True})
    assert httpx.get(f"{gateway.url}/api/v1/boot-sources").status_code == 504
    assert readyz(gateway).status_code == 200


def test_readyz_turns_unready_when_maas_stays_silent_past_the_window(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(readiness_window=0.3, readiness_probe_interval=0.05, maas_retries=0)
    wait_for(lambda: readyz(gateway).status_code == 200)
    set_faults(simulator.url, {"status": 503})
    wait_for(lambda: readyz(gateway).status_code == 503)
    body = readyz(gateway).json()
    assert body["reason"] == "MAAS has not answered recently"
    assert body["maas"]["last_success_age_s"] >= 0.3
    assert body["maas"]["last_failure"] == "503"
    set_faults(simulator.url)
    wait_for(lambda: readyz(gateway).status_code == 200)


def test_readyz_stays_ready_while_the_cache_can_serve(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    ttls = {
        f"cache_ttl_{family}": 0.5
        for family in ("boot_resources", "boot_resource", "boot_sources", "selections")
    }
    gateway = start_gateway(
        readiness_window=0.2,
        readiness_probe_interval=0.05,
        cache_ttl_import_status=0.5,
        cache_stale_ttl=1.0,
        maas_retries=0,
        **ttls,
    )
    httpx.get(f"{gateway.url}/api/v1/boot-sources").raise_for_status()
    set_faults(simulator.url, {"status": 503})
    wait_for(lambda: readyz(gateway).json()["reason"] != "MAAS answered recently")
    response = readyz(gateway)
    assert response.status_code == 200
    assert response.json()["reason"] == "MAAS is not answering; the cache still serves"
    assert response.json()["cache"]["entries"] == 1
    # Once even a stale entry is too old to serve, the gateway is no use to anyone.
    wait_for(lambda: readyz(gateway).status_code == 503, timeout=10)


def test_probe_asks_maas_only_while_no_call_succeeds(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    interval = 0.3
    gateway = start_gateway(readiness_probe_interval=interval)
    wait_for(lambda: upstream_counts(simulator.url, probes=True).get(VERSION, 0) >= 3)
    # While real calls keep succeeding (a 404 is MAAS answering too), the probe has nothing to
    # find out. Each id is new, so no stored answer stands in for MAAS's. A busy machine may
    # leave a gap longer than the interval between two answers: the probe may ask in each such
    # gap, and only then.
    before = upstream_counts(simulator.url, probes=True).get(VERSION, 0)
    answered = [time.monotonic()]
    for missing in range(900001, 900031):
        assert httpx.get(f"{gateway.url}/api/v1/boot-resources/{missing}").status_code == 404
        answered.append(time.monotonic())
    gaps = sum(1 for a, b in itertools.pairwise(answered) if b - a >= interval)
    assert upstream_counts(simulator.url, probes=True).get(VERSION, 0) - before <= gaps + 1


def test_health_endpoints_stay_out_of_the_openapi_document(start_gateway: Any) -> None:
    gateway = start_gateway()
    paths = httpx.get(f"{gateway.url}/openapi.json").json()["paths"]
    assert not [path for path in paths if path in ("/livez", "/readyz", "/metrics")]


# --- the readiness rule itself, on a clock the test moves --------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def health(clock: Clock) -> UpstreamHealth:
    return UpstreamHealth(window=60, servable=420, probe_interval=10, clock=clock)


def test_any_answer_below_500_counts_as_maas_answering() -> None:
    clock = Clock()
    tracker = health(clock)
    for outcome in ("200", "204", "403", "404"):
        tracker.observe(outcome)
        assert tracker.readiness(cache_entries=0).ready, outcome
    tracker = health(clock)
    for outcome in ("500", "503", "UPSTREAM_TIMEOUT", "UPSTREAM_UNAVAILABLE"):
        tracker.observe(outcome)
    readiness = tracker.readiness(cache_entries=0)
    assert not readiness.ready
    assert readiness.detail["maas"]["consecutive_failures"] == 4


def test_failures_within_the_window_leave_readiness_alone() -> None:
    clock = Clock()
    tracker = health(clock)
    tracker.observe("200")
    for _ in range(100):
        clock.now += 0.5
        tracker.observe("UPSTREAM_TIMEOUT")
    assert tracker.readiness(cache_entries=0).ready
    clock.now += 10.1
    assert not tracker.readiness(cache_entries=0).ready
    assert tracker.readiness(cache_entries=5).ready
    clock.now += 360
    assert not tracker.readiness(cache_entries=5).ready


def test_draining_is_never_ready() -> None:
    tracker = health(Clock())
    tracker.observe("200")
    tracker.draining = True
    readiness = tracker.readiness(cache_entries=10)
    assert (readiness.ready, readiness.reason) == (False, "shutting down")
