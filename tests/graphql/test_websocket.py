"""GraphQL over WebSocket, proven by the clients themselves: graphql-ws (graphql-transport-ws)
and subscriptions-transport-ws (the legacy graphql-ws subprotocol). One operation's errors are
that operation's; a silent socket is closed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.cli.server import BackgroundServer
from tests.gateway import GatewayFactory, set_simulator_config, write_tokens
from tests.graphql.node import run_client


def ws_url(gateway: BackgroundServer) -> str:
    return gateway.url.replace("http://", "ws://") + "/graphql"


def by_case(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line.pop("case"): line for line in lines}


@pytest.fixture
def reader_gateway(
    start_gateway: GatewayFactory, simulator: BackgroundServer, tmp_path: Path
) -> tuple[BackgroundServer, dict[str, str]]:
    # An import that lasts until the test stops it: the client decides when it ends.
    set_simulator_config(simulator.url, import_duration_s=3600)
    tokens = write_tokens(tmp_path / "tokens", writer="read,write", reader="read")
    return start_gateway(tokens_file=str(tmp_path / "tokens")), tokens


def test_graphql_ws_client_gets_each_error_for_its_operation_and_keeps_the_socket(
    reader_gateway: tuple[BackgroundServer, dict[str, str]],
) -> None:
    gateway, tokens = reader_gateway
    cases = by_case(
        run_client("graphql-ws.mjs", ws_url(gateway), tokens["writer"], tokens["reader"])
    )
    expected = {
        "syntax": "GRAPHQL_VALIDATION",
        "validation": "GRAPHQL_VALIDATION",
        "unknown-operation": "BAD_REQUEST",
        "many-operations": "BAD_REQUEST",
        "scope": "FORBIDDEN",
    }
    for name, code in expected.items():
        case = cases[name]
        assert case["results"] == [], (name, case)
        assert [e["code"] for e in case["error"]["graphql"]] == [code], (name, case)
        assert case["after"] is True and case["closed"] is None, (name, case)
    assert cases["query"] == {"results": [{"data": {"bootSources": [{"id": "1"}]}}], "error": None}


def test_import_progress_completes_when_the_import_ends_if_asked(
    reader_gateway: tuple[BackgroundServer, dict[str, str]],
) -> None:
    gateway, tokens = reader_gateway
    case = by_case(run_client("graphql-ws.mjs", ws_url(gateway), tokens["writer"]))[
        "until-import-ends"
    ]
    assert case["started"] == [{"data": {"startImport": {"importing": True}}}]
    states = [r["data"]["importProgress"]["importing"] for r in case["results"]]
    assert case["error"] is None  # completed by the gateway, not cut off
    assert states[0] is True and states[-1] is False and states.count(False) == 1, states


def test_legacy_graphql_ws_clients_run_queries_subscriptions_and_errors(
    reader_gateway: tuple[BackgroundServer, dict[str, str]],
) -> None:
    gateway, tokens = reader_gateway
    cases = by_case(
        run_client("legacy-ws.mjs", ws_url(gateway), tokens["writer"], "not-a-real-token")
    )
    assert cases["query"] == {"results": [{"data": {"bootSources": [{"id": "1"}]}}], "error": None}
    progress = cases["subscription"]["results"]
    assert progress and all("importProgress" in r["data"] for r in progress)
    assert [e["code"] for e in cases["syntax"]["error"]] == ["GRAPHQL_VALIDATION"]
    assert [e["code"] for e in cases["unknown-operation"]["error"]] == ["BAD_REQUEST"]
    assert cases["after-errors"]["results"] == [{"data": {"bootSources": [{"id": "1"}]}}]
    refused = cases["wrong-credential"]
    assert refused["connectionError"]["extensions"]["code"] == "UNAUTHENTICATED", refused


@pytest.mark.parametrize("subprotocol", ["graphql-transport-ws", "graphql-ws"])
def test_a_socket_without_connection_init_is_closed_with_4408(
    start_gateway: GatewayFactory, subprotocol: str
) -> None:
    gateway = start_gateway(graphql_ws_init_timeout=0.2)
    with (
        connect(ws_url(gateway), subprotocols=[subprotocol], open_timeout=10) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=30)  # the gateway closes it long before this
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


@pytest.mark.parametrize("subprotocol", ["graphql-transport-ws", "graphql-ws"])
def test_a_socket_that_signs_in_in_time_stays_open(
    start_gateway: GatewayFactory, subprotocol: str
) -> None:
    gateway = start_gateway(graphql_ws_init_timeout=0.2)
    with connect(ws_url(gateway), subprotocols=[subprotocol], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        start = "subscribe" if subprotocol == "graphql-transport-ws" else "start"
        query = {"query": "{ bootSources { id } }"}
        ws.send(json.dumps({"id": "1", "type": start, "payload": query}))
        answer = json.loads(ws.recv(timeout=10))
        assert answer["payload"] == {"data": {"bootSources": [{"id": "1"}]}}, answer
