"""Each upstream fault gets a typed error within the deadline (or a stale answer), and the
gateway recovers by itself without leaking tasks, connections, threads or file handles."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from app.cli.server import BackgroundServer, bind_socket
from tests.faults.conftest import DEADLINE, TIMEOUT, GatewayFactory
from tests.gateway import gql, reset_counts, set_faults, upstream_counts
from tests.leaks import Resources

LIST_SOURCES = "{ bootSources { id url } }"
CREATE_SOURCE = """mutation($input: CreateBootSourceInput!) {
  createBootSource(input: $input) { bootSource { id } errors { code message } }
}"""

# Short-lived cache entries and no stale fallback: every read below reaches MAAS.
NO_CACHE: dict[str, Any] = {
    "response_cache_ttl": 0,
    "cache_ttl_boot_sources": 0.001,
    "cache_stale_ttl": 0,
}

FAULTS: dict[str, tuple[dict[str, Any], int, str]] = {
    "hang": ({"hang": True}, 504, "UPSTREAM_TIMEOUT"),
    "burst_503": ({"status": 503, "times": 20}, 503, "UPSTREAM_UNAVAILABLE"),
    "burst_500": ({"status": 500, "times": 20}, 502, "UPSTREAM_BAD_RESPONSE"),
    "malformed_json": ({"malformed": True}, 502, "UPSTREAM_BAD_RESPONSE"),
    "dropped_connection": ({"drop": True}, 502, "UPSTREAM_BAD_RESPONSE"),
    "slow_answer": ({"latency_ms": 4000 * TIMEOUT}, 504, "UPSTREAM_TIMEOUT"),
    # Every piece comes well within the read timeout; the whole body never within the deadline.
    "slow_drip": ({"drip_ms": 400 * TIMEOUT}, 504, "UPSTREAM_TIMEOUT"),
}


def rest_read(url: str) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/boot-sources", timeout=30)


def assert_typed(response: httpx.Response, status: int, code: str) -> None:
    assert "Traceback" not in response.text
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def assert_graphql_code(response: httpx.Response, code: str) -> None:
    assert "Traceback" not in response.text
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == [code], body


def timed(call: Any, *args: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call(*args)
    return response, time.monotonic() - started


@pytest.mark.parametrize("fault", FAULTS)
def test_upstream_fault_is_a_typed_error_within_the_deadline_and_recovers(
    simulator: BackgroundServer,
    start_gateway: GatewayFactory,
    resources: Resources,
    fault: str,
) -> None:
    rule, status, code = FAULTS[fault]
    gateway = start_gateway(**NO_CACHE)
    assert rest_read(gateway.url).status_code == 200  # a warm pool: one open connection
    tasks_before, before = gateway.probe.tasks(), resources.counts()

    set_faults(simulator.url, {"path": "boot-sources", **rule})
    response, elapsed = timed(rest_read, gateway.url)
    assert_typed(response, status, code)
    assert elapsed < DEADLINE
    response, elapsed = timed(gql, gateway.url, LIST_SOURCES)
    assert_graphql_code(response, code)
    assert elapsed < DEADLINE

    set_faults(simulator.url)
    assert rest_read(gateway.url).status_code == 200
    assert gql(gateway.url, LIST_SOURCES).json()["data"]["bootSources"]
    resources.assert_no_leaks(before)
    assert gateway.probe.tasks() <= tasks_before


def test_refused_connection_is_unavailable_within_the_deadline(
    start_gateway: GatewayFactory, resources: Resources
) -> None:
    with bind_socket() as closed:  # bound, never listening: connections are refused
        port = closed.getsockname()[1]
        gateway = start_gateway(maas_url=f"http://127.0.0.1:{port}/MAAS", **NO_CACHE)
        fds = resources.counts()["fds"]
        response, elapsed = timed(rest_read, gateway.url)
        assert_typed(response, 503, "UPSTREAM_UNAVAILABLE")
        assert elapsed < DEADLINE
        response, elapsed = timed(gql, gateway.url, LIST_SOURCES)
        assert_graphql_code(response, "UPSTREAM_UNAVAILABLE")
        assert elapsed < DEADLINE
        assert gateway.probe.tasks() >= 1
        assert resources.settle({"fds": fds})["fds"] <= fds


def test_short_burst_of_503s_is_retried_away(
    simulator: BackgroundServer, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(maas_retries=2, **NO_CACHE)
    set_faults(simulator.url, {"path": "boot-sources", "status": 503, "times": 2})
    reset_counts(simulator.url)

    response = rest_read(gateway.url)

    assert response.status_code == 200
    assert [source["url"] for source in response.json()]
    assert upstream_counts(simulator.url) == {"GET /MAAS/api/2.0/boot-sources/": 3}


def test_stale_answer_is_served_when_maas_fails_within_stale_if_error(
    simulator: BackgroundServer, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(response_cache_ttl=0, cache_ttl_boot_sources=0.05, cache_stale_ttl=60)
    fresh = rest_read(gateway.url).json()
    time.sleep(0.1)
    set_faults(simulator.url, {"path": "boot-sources", "status": 503})
    response, elapsed = timed(rest_read, gateway.url)
    assert response.status_code == 200, response.text
    assert response.json() == fresh
    assert elapsed < DEADLINE
    assert gql(gateway.url, LIST_SOURCES).json()["data"]["bootSources"]


@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_connection_dropped_mid_body_fails_the_write_cleanly(
    simulator: BackgroundServer, start_gateway: GatewayFactory, resources: Resources, api: str
) -> None:
    gateway = start_gateway(**NO_CACHE)
    assert rest_read(gateway.url).status_code == 200
    before = resources.counts()
    set_faults(simulator.url, {"path": "boot-sources", "method": "POST", "drop_after_bytes": 64})
    source = {"url": "http://dropped.example.com/", "keyring_filename": "/k.gpg"}
    if api == "rest":
        response, elapsed = timed(
            lambda: httpx.post(f"{gateway.url}/api/v1/boot-sources", json=source, timeout=30)
        )
        assert_typed(response, 502, "UPSTREAM_BAD_RESPONSE")
    else:
        variables = {"input": {"url": source["url"], "keyringFilename": "/k.gpg"}}
        response, elapsed = timed(gql, gateway.url, CREATE_SOURCE, variables)
        assert_graphql_code(response, "UPSTREAM_BAD_RESPONSE")
    assert elapsed < DEADLINE
    set_faults(simulator.url)
    assert rest_read(gateway.url).status_code == 200
    resources.assert_no_leaks(before)
