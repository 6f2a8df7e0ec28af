"""The importProgress subscription over graphql-transport-ws: pushes changes, one poller shared."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

from app.cli.server import BackgroundServer
from tests.gateway import WRONG_KEY, GatewayFactory, gql, set_simulator_config

PROGRESS = (
    "subscription { importProgress { importing resources { name version complete progress } } }"
)


@contextmanager
def subscription(url: str, query: str) -> Iterator[ClientConnection]:
    ws_url = url.replace("http://", "ws://") + "/graphql"
    with connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        yield ws


def next_payload(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    message = json.loads(ws.recv(timeout=timeout))
    assert message["type"] == "next", message
    payload: dict[str, Any] = message["payload"]
    return payload


def pollers(gateway: BackgroundServer) -> int:
    count: int = gateway.app.state.service.progress.pollers  # type: ignore[attr-defined]
    return count


def wait_for(condition: Any, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_import_progress_pushes_changes_until_complete(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    set_simulator_config(simulator.url, import_duration_s=2.0)
    gateway = start_gateway(import_poll_interval=0.2, cache_ttl_while_importing=0.1)
    with subscription(gateway.url, PROGRESS) as ws:
        first = next_payload(ws)["data"]["importProgress"]
        assert first["importing"] is False
        gql(gateway.url, "mutation { startImport { importing } }")
        seen = []
        while True:
            snapshot = next_payload(ws)["data"]["importProgress"]
            seen.append(snapshot)
            if not snapshot["importing"] and all(r["complete"] for r in snapshot["resources"]):
                break
        assert any(s["importing"] for s in seen)
        progresses = [r["progress"] for s in seen for r in s["resources"] if not r["complete"]]
        assert progresses, "progress of incomplete sets was pushed"
        # Only changes are pushed: no two consecutive snapshots are equal.
        snapshots = [first, *seen]
        assert all(a != b for a, b in itertools.pairwise(snapshots))
        ws.send(json.dumps({"id": "1", "type": "complete"}))


def test_one_poller_serves_every_subscriber_and_stops_without_them(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(import_poll_interval=0.2)
    assert pollers(gateway) == 0
    with (
        subscription(gateway.url, PROGRESS) as first,
        subscription(gateway.url, PROGRESS) as second,
    ):
        a = next_payload(first)
        b = next_payload(second)
        assert a == b
        assert pollers(gateway) == 1
    wait_for(lambda: pollers(gateway) == 0)


def test_subscription_error_carries_a_code(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(api_key=WRONG_KEY)
    with subscription(gateway.url, PROGRESS) as ws:
        message = json.loads(ws.recv(timeout=10))
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
