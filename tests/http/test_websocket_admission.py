"""Websocket admission: caps on sockets open but not signed in (per client and in all), freed
by signing in or closing; a cap on one principal's subscriptions."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from app.cli.server import BackgroundServer
from tests.gateway import GatewayFactory


def open_socket(gateway: BackgroundServer) -> ClientConnection:
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    return connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10)


def sign_in(ws: ClientConnection) -> None:
    ws.send(json.dumps({"type": "connection_init"}))
    assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"


def refused(gateway: BackgroundServer) -> bool:
    """Whether a new socket is refused at the handshake (a 403 before accept)."""
    try:
        with open_socket(gateway):
            pass
    except InvalidStatus as error:
        status: int = error.response.status_code
        return status == 403
    return False


@pytest.mark.parametrize(
    "caps",
    [
        {"graphql_ws_max_pending_per_client": 2},
        {"graphql_ws_max_pending": 2, "graphql_ws_max_pending_per_client": 50},
    ],
)
def test_sockets_waiting_to_sign_in_are_capped_until_one_signs_in_or_closes(
    start_gateway: GatewayFactory, caps: dict[str, int]
) -> None:
    gateway = start_gateway(**caps)
    with ExitStack() as stack:
        first = stack.enter_context(open_socket(gateway))
        second = stack.enter_context(open_socket(gateway))
        assert refused(gateway)
        sign_in(first)  # signed in: it no longer counts
        third = stack.enter_context(open_socket(gateway))
        assert refused(gateway)
        second.close()
        stack.enter_context(open_socket(gateway))
        assert refused(gateway)
        third.close()
    assert not refused(gateway)


def subscribe(ws: ClientConnection, id: str) -> dict[str, Any]:
    query = "subscription { importProgress { importing } }"
    ws.send(json.dumps({"id": id, "type": "subscribe", "payload": {"query": query}}))
    message: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return message


def test_one_principal_holds_at_most_its_cap_of_subscriptions(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(graphql_max_subscriptions_per_principal=2)
    with open_socket(gateway) as ws, open_socket(gateway) as other:
        sign_in(ws)
        sign_in(other)
        assert subscribe(ws, "1")["type"] == "next"
        assert subscribe(other, "1")["type"] == "next"
        over = subscribe(ws, "2")
        assert over["type"] == "error", over
        assert over["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
        ws.send(json.dumps({"id": "1", "type": "complete"}))  # one ends: room for another
        hub = gateway.app.state.service.progress  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while hub.subscribers > 1:
            assert time.monotonic() < deadline, "the ended subscription was never released"
            time.sleep(0.02)
        again = subscribe(ws, "3")
        assert again["type"] == "next" and not again["payload"].get("errors"), again
