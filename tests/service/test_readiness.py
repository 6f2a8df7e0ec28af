"""Waiting for images: the bootResourcesReady subscription completes once every matching
image is complete or fails when MAAS stops making progress; REST long-polls the same."""

from __future__ import annotations

import json
from typing import Any

import httpx
from websockets.sync.client import connect

from app.cli.server import BackgroundServer
from tests.gateway import GatewayFactory, set_simulator_config

READY = """subscription($stall: Float!) {
  bootResourcesReady(filter: {os: "ubuntu", arches: ["amd64"]}, stallSeconds: $stall) {
    ready importing resources { name architecture complete progress } } }"""


def follow(gateway: BackgroundServer, stall: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every `next` payload's data, and the message that ended the subscription: `complete`,
    or a `next` with errors (an error raised while the stream runs)."""
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    payloads = []
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        body = {"query": READY, "variables": {"stall": stall}}
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": body}))
        while True:
            message = json.loads(ws.recv(timeout=120))
            if message["type"] != "next" or message["payload"].get("errors"):
                return payloads, message
            payloads.append(message["payload"]["data"]["bootResourcesReady"])


def start_import(gateway: BackgroundServer) -> None:
    httpx.post(f"{gateway.url}/api/v1/boot-resources/import", timeout=30).raise_for_status()


def test_the_subscription_completes_once_every_matching_image_is_complete(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(import_poll_interval=0.05)
    start_import(gateway)
    payloads, end = follow(gateway, stall=600)
    assert end == {"id": "1", "type": "complete"}
    last = payloads[-1]
    assert last["ready"] is True and last["resources"]
    assert all(r["complete"] and r["name"].startswith("ubuntu/") for r in last["resources"])
    assert all(r["architecture"].startswith("amd64/") for r in last["resources"])
    assert [p["ready"] for p in payloads].count(True) == 1  # it ends with the first ready


def test_the_subscription_fails_when_maas_stops_making_progress(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    set_simulator_config(simulator.url, import_duration_s=3600)
    gateway = start_gateway(import_poll_interval=0.05)
    start_import(gateway)
    httpx.delete(f"{gateway.url}/api/v1/boot-resources/import", timeout=30).raise_for_status()
    payloads, end = follow(gateway, stall=0.5)
    assert end["type"] == "next", end
    [error] = end["payload"]["errors"]
    assert error["extensions"]["code"] == "IMPORT_STALLED"
    assert "MAAS is not importing" in error["message"]
    assert payloads and payloads[-1]["ready"] is False


def test_rest_answers_at_once_or_when_ready_and_is_never_a_stored_answer(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    set_simulator_config(simulator.url, import_duration_s=3600)
    gateway = start_gateway(import_poll_interval=0.05)
    start_import(gateway)
    ready = f"{gateway.url}/api/v1/boot-resources/ready"
    params = {"os": "ubuntu", "arch": ["amd64", "arm64"]}
    for _ in range(2):
        now = httpx.get(ready, params=params, timeout=30)
        assert now.status_code == 200 and now.headers["cache-control"] == "no-store"
        assert "x-cache" not in now.headers or now.headers["x-cache"] != "HIT"
        body = now.json()
        assert body["ready"] is False and body["importing"] is True and body["resources"]
    set_simulator_config(simulator.url, import_duration_s=0.5)
    start_import(gateway)  # a new import replaces the long one, and ends soon
    for _ in range(10):  # each call waits up to 60 s on the gateway for the images
        body = httpx.get(ready, params={**params, "wait": 60}, timeout=120).json()
        if body["ready"]:
            break
    assert body["ready"] is True and all(r["complete"] for r in body["resources"])
