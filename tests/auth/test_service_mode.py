"""Service mode: gateway tokens with scopes, anonymous access, token files, websockets."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.auth.tokens import TokenFileError, TokenStore, token_digest
from app.cli.server import BackgroundServer, bind_socket
from app.main import create_app
from tests.conftest import ADMIN_KEY
from tests.gateway import (
    bearer,
    gateway_settings,
    gql,
    reset_counts,
    running_gateway,
    upstream_counts,
    write_tokens,
)

QUERY = "{ bootResources { id name } }"
MUTATION = "mutation { stopImport { importing errors { code } } }"
PROGRESS = "subscription { importProgress { importing } }"
DENIED = {"message": "missing or invalid credentials", "code": "UNAUTHENTICATED"}

Start = Callable[..., BackgroundServer]


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return tmp_path / "tokens"


@pytest.fixture
def tokens(tokens_file: Path) -> dict[str, str]:
    return write_tokens(tokens_file, reader="read", writer="write", both="read,write", boss="admin")


@pytest.fixture
def start(simulator: BackgroundServer, tokens_file: Path) -> Iterator[Start]:
    """Gateways in service mode with the test's tokens file and no anonymous access."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> BackgroundServer:
            overrides.setdefault("tokens_file", str(tokens_file))
            settings = gateway_settings(simulator.url, ADMIN_KEY, **overrides)
            return stack.enter_context(running_gateway(settings))

        yield start


@pytest.fixture
def gateway(start: Start, tokens: dict[str, str]) -> BackgroundServer:
    return start()


def rest(
    gateway: BackgroundServer, method: str, path: str, token: str | None = None, **kw: Any
) -> httpx.Response:
    headers = {**kw.pop("headers", {}), **(bearer(token) if token else {})}
    return httpx.request(method, f"{gateway.url}/api/v1{path}", headers=headers, timeout=30, **kw)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The one error of a REST envelope or a GraphQL response, as message and code."""
    body = response.json()
    if "error" in body:
        return {"message": body["error"]["message"], "code": body["error"]["code"]}
    [error] = body["errors"]
    return {"message": error["message"], "code": error["extensions"]["code"]}


# --- who gets in ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "bearer mgw_lower-case-scheme-unknown-token-00000000000",
        "Bearer mgw_not-a-token-this-gateway-knows-at-all-0000000",
        "Basic dXNlcjpwYXNz",
        "Bearer AdminConsumerKey01:AdminTokenKey00001:AdminTokenSecret0000000000000001",
    ],
    ids=["none", "empty", "lower-case", "unknown-token", "basic", "maas-key"],
)
def test_a_missing_or_wrong_credential_is_refused_alike_on_rest_and_graphql(
    gateway: BackgroundServer, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = rest(gateway, "GET", "/boot-resources", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert error_of(response) == DENIED
    response = gql(gateway.url, QUERY, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert error_of(response) == DENIED
    assert "data" not in response.json()  # refused before anything ran


def test_a_credential_given_twice_is_refused(
    gateway: BackgroundServer, tokens: dict[str, str]
) -> None:
    good, wrong = f"Bearer {tokens['reader']}", "Bearer mgw_wrong"
    assert gql(gateway.url, QUERY, headers=bearer(tokens["reader"])).status_code == 200

    def statuses(*authorizations: str) -> tuple[int, int]:
        headers = [("Authorization", a) for a in authorizations]
        graphql = httpx.post(f"{gateway.url}/graphql", json={"query": QUERY}, headers=headers)
        listed = httpx.get(f"{gateway.url}/api/v1/boot-sources", headers=headers)
        for response in (graphql, listed):
            if response.status_code == 401:
                assert error_of(response) == DENIED
        return graphql.status_code, listed.status_code

    assert statuses(good) == (200, 200)
    # No one can say which credential was meant: in either order, and even when both are
    # good, and whether or not a stored answer is waiting (the query above stored one).
    assert statuses(good, wrong) == (401, 401)
    assert statuses(wrong, good) == (401, 401)
    assert statuses(good, good) == (401, 401)


def test_unknown_routes_under_the_api_need_a_credential_too(gateway: BackgroundServer) -> None:
    response = rest(gateway, "GET", "/no-such-route")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"] == 'Bearer realm="maas-gateway"'


def test_docs_and_the_graphiql_page_need_no_credential(gateway: BackgroundServer) -> None:
    assert httpx.get(f"{gateway.url}/openapi.json").status_code == 200
    page = httpx.get(f"{gateway.url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "GraphiQL" in page.text


def test_a_refused_request_never_reaches_maas(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    reset_counts(simulator.url)
    rest(gateway, "GET", "/boot-resources", "mgw_wrong")
    gql(gateway.url, QUERY, headers=bearer("mgw_wrong"))
    rest(gateway, "POST", "/boot-resources/import")
    assert upstream_counts(simulator.url) == {}


# --- scopes -----------------------------------------------------------------------------------


def test_a_read_token_reads_but_cannot_change_anything(
    gateway: BackgroundServer, tokens: dict[str, str], simulator: BackgroundServer
) -> None:
    token = tokens["reader"]
    assert rest(gateway, "GET", "/boot-resources", token).status_code == 200
    assert rest(gateway, "GET", "/boot-sources", token).status_code == 200
    response = gql(gateway.url, QUERY, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["data"]["bootResources"]
    reset_counts(simulator.url)
    for method, path in (
        ("POST", "/boot-resources/import"),
        ("DELETE", "/boot-resources/import"),
        ("DELETE", "/boot-sources/1"),
        ("POST", "/boot-sources/1/selections"),
    ):
        response = rest(gateway, method, path, token, json={})
        assert response.status_code == 403, (method, path)
        assert error_of(response) == {"message": "this needs the write scope", "code": "FORBIDDEN"}
    response = gql(gateway.url, MUTATION, headers=bearer(token))
    assert response.status_code == 403
    assert error_of(response) == {"message": "this needs the write scope", "code": "FORBIDDEN"}
    assert "data" not in response.json()  # refused before anything ran
    assert upstream_counts(simulator.url) == {}


def test_a_write_only_token_changes_but_cannot_read(
    gateway: BackgroundServer, tokens: dict[str, str]
) -> None:
    token = tokens["writer"]
    response = rest(gateway, "DELETE", "/boot-resources/import", token)
    assert response.status_code == 202
    response = gql(gateway.url, MUTATION, headers=bearer(token))
    assert response.json() == {"data": {"stopImport": {"importing": False, "errors": []}}}
    response = rest(gateway, "GET", "/boot-resources", token)
    assert response.status_code == 403
    assert error_of(response)["code"] == "FORBIDDEN"
    response = gql(gateway.url, QUERY, headers=bearer(token))
    assert response.status_code == 403
    assert error_of(response) == {"message": "this needs the read scope", "code": "FORBIDDEN"}


def test_a_write_only_token_never_gets_a_stored_response(
    gateway: BackgroundServer, tokens: dict[str, str]
) -> None:
    """The response cache answers before GraphQL runs; it must check the scope itself."""
    first = gql(gateway.url, QUERY, headers=bearer(tokens["both"]))
    again = gql(gateway.url, QUERY, headers=bearer(tokens["both"]))
    assert (first.headers["x-cache"], again.headers["x-cache"]) == ("MISS", "HIT")
    for _ in range(2):
        response = gql(gateway.url, QUERY, headers=bearer(tokens["writer"]))
        assert response.status_code == 403
        assert response.headers.get("x-cache") != "HIT"


def test_an_admin_token_may_do_everything(
    gateway: BackgroundServer, tokens: dict[str, str]
) -> None:
    token = tokens["boss"]
    assert rest(gateway, "GET", "/boot-sources", token).status_code == 200
    assert rest(gateway, "DELETE", "/boot-resources/import", token).status_code == 202
    assert "errors" not in gql(gateway.url, MUTATION, headers=bearer(token)).json()


def test_tokens_never_share_cached_answers(
    gateway: BackgroundServer, tokens: dict[str, str], simulator: BackgroundServer
) -> None:
    reset_counts(simulator.url)
    for name in ("reader", "both", "boss"):
        response = rest(gateway, "GET", "/boot-sources", tokens[name])
        assert response.headers["x-cache"] == "MISS", name
        assert rest(gateway, "GET", "/boot-sources", tokens[name]).headers["x-cache"] == "HIT"
    assert upstream_counts(simulator.url) == {"GET /MAAS/api/2.0/boot-sources/": 3}


# --- anonymous access -------------------------------------------------------------------------


def test_anonymous_read_allows_queries_only(start: Start, tokens: dict[str, str]) -> None:
    gateway = start(anonymous_scopes="read")
    assert rest(gateway, "GET", "/boot-resources").status_code == 200
    assert gql(gateway.url, QUERY).json()["data"]["bootResources"]
    response = rest(gateway, "POST", "/boot-resources/import")
    assert response.status_code == 403
    assert error_of(gql(gateway.url, MUTATION))["code"] == "FORBIDDEN"
    # Tokens still work beside anonymous readers, with their own scopes.
    assert rest(gateway, "DELETE", "/boot-resources/import", tokens["both"]).status_code == 202


def test_a_wrong_token_is_refused_even_when_anonymous_read_is_allowed(
    start: Start, tokens: dict[str, str]
) -> None:
    gateway = start(anonymous_scopes="read")
    response = rest(gateway, "GET", "/boot-resources", "mgw_wrong-token")
    assert response.status_code == 401


@pytest.mark.parametrize("header", ["", "Bearer", "Basic"])
def test_an_empty_or_bare_authorization_header_is_refused_not_anonymous(
    start: Start, tokens: dict[str, str], header: str
) -> None:
    gateway = start(anonymous_scopes="read")
    headers = {"Authorization": header}
    refused = httpx.get(f"{gateway.url}/api/v1/boot-resources", headers=headers, timeout=30)
    assert refused.status_code == 401, refused.text
    graphql = httpx.post(
        f"{gateway.url}/graphql", json={"query": QUERY}, headers=headers, timeout=30
    )
    assert graphql.status_code == 401
    assert "www-authenticate" in refused.headers


def test_without_tokens_or_anonymous_access_every_request_is_refused(
    simulator: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = gateway_settings(simulator.url, ADMIN_KEY, anonymous_scopes="")
    with caplog.at_level(logging.WARNING), running_gateway(settings) as gateway:
        assert rest(gateway, "GET", "/boot-resources").status_code == 401
        assert gql(gateway.url, QUERY).status_code == 401
    assert any("will be rejected with 401" in r.getMessage() for r in caplog.records)


def test_the_production_default_has_no_anonymous_access() -> None:
    from app.core.settings import Settings

    settings = Settings(_env_file=None)
    assert settings.auth_mode == "service"
    assert settings.anonymous_scopes == ""
    assert settings.tokens_file is None


# --- the tokens file --------------------------------------------------------------------------


def test_tokens_file_changes_apply_without_a_restart(
    gateway: BackgroundServer, tokens_file: Path, tokens: dict[str, str]
) -> None:
    assert rest(gateway, "GET", "/boot-resources", tokens["reader"]).status_code == 200
    fresh = write_tokens(tokens_file, newcomer="read")
    deadline = time.monotonic() + 10
    while rest(gateway, "GET", "/boot-resources", fresh["newcomer"]).status_code != 200:
        assert time.monotonic() < deadline, "the new token was never accepted"
        time.sleep(0.2)
    # The old file's tokens are revoked by the same change.
    assert rest(gateway, "GET", "/boot-resources", tokens["reader"]).status_code == 401


def test_a_broken_tokens_file_keeps_the_tokens_already_loaded(
    tokens_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = write_tokens(tokens_file, keeper="read")
    now = [0.0]
    store = TokenStore(tokens_file, check_interval=1.0, clock=lambda: now[0])
    store.load()
    secret_looking = "sha256:" + "ab" * 32 + " name read,bogus-scope-with-secret-text"
    tokens_file.write_text(secret_looking + "\n")
    now[0] = 5.0
    with caplog.at_level(logging.ERROR):
        assert store.lookup(tokens["keeper"]) is not None
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "line 1" in record.getMessage()
    assert "ab" * 32 not in record.getMessage()


def test_a_tokens_file_is_re_read_at_most_every_interval_unless_asked(tokens_file: Path) -> None:
    first = write_tokens(tokens_file, one="read")
    now = [0.0]
    store = TokenStore(tokens_file, check_interval=2.0, clock=lambda: now[0])
    store.load()
    second = write_tokens(tokens_file, two="read")
    now[0] = 1.0
    assert store.lookup(second["two"]) is None
    assert store.lookup(first["one"]) is not None
    store.request_reload()  # what SIGHUP does
    assert store.lookup(second["two"]) is not None
    assert store.lookup(first["one"]) is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("sha256:abc reader read\n", "line 1: the hash must be sha256:<64 hex digits>"),
        (f"md5:{'a' * 64} reader read\n", "line 1: the hash must be sha256:<64 hex digits>"),
        (f"# c\n\nsha256:{'a' * 64} reader\n", "line 3: expected"),
        (f"sha256:{'a' * 64} reader read,root\n", "line 1: unknown scope root"),
        (f"sha256:{'a' * 64} x read\nsha256:{'b' * 64} x read\n", "line 2: duplicate"),
        (f"sha256:{'a' * 64} x/y read\n", "line 1: invalid token name"),
    ],
    ids=["short-hash", "md5", "no-scopes", "unknown-scope", "duplicate", "bad-name"],
)
def test_a_malformed_tokens_file_stops_start_up_naming_the_line(
    simulator: BackgroundServer, tokens_file: Path, content: str, problem: str
) -> None:
    tokens_file.write_text(content)
    app = create_app(gateway_settings(simulator.url, ADMIN_KEY, tokens_file=str(tokens_file)))

    async def start() -> None:
        async with LifespanManager(app):
            pass

    import asyncio

    with pytest.raises(TokenFileError) as raised:
        asyncio.run(start())
    assert problem in str(raised.value)
    assert "a" * 64 not in str(raised.value)


def test_sighup_reloads_the_tokens_file_of_a_running_gateway(
    simulator: BackgroundServer, tokens_file: Path
) -> None:
    first = write_tokens(tokens_file, one="read")
    sock = bind_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAAS_GATEWAY_")},
        "MAAS_GATEWAY_MAAS_URL": f"{simulator.url}/MAAS",
        "MAAS_GATEWAY_MAAS_API_KEY": ADMIN_KEY,
        "MAAS_GATEWAY_TOKENS_FILE": str(tokens_file),
        "MAAS_GATEWAY_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api/v1/boot-resources"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base, headers=bearer(first["one"])).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        second = write_tokens(tokens_file, two="read")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 1.5  # shorter than the file's own check interval
        while httpx.get(base, headers=bearer(second["two"])).status_code != 200:
            assert time.monotonic() < deadline, "SIGHUP did not reload the tokens"
            time.sleep(0.05)
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_token_create_prints_a_token_once_and_the_line_that_admits_it(tokens_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "create", "--name", "ci", "--scopes", "write"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    token = lines[1]
    line = lines[3]
    assert token.startswith("mgw_") and len(token) >= 40
    assert line == f"sha256:{token_digest(token)} ci write"
    assert token not in line
    tokens_file.write_text(line + "\n")
    store = TokenStore(tokens_file)
    store.load()
    entry = store.lookup(token)
    assert entry is not None and entry.name == "ci"


def test_token_create_refuses_an_unknown_scope() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "create", "--name", "x", "--scopes", "root"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown scope root" in result.stderr
    assert result.stdout == ""


# --- websockets -------------------------------------------------------------------------------


def ws_connect(
    gateway: BackgroundServer, headers: dict[str, str] | list[tuple[str, str]] | None = None
) -> ClientConnection:
    return connect(
        gateway.url.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=10,
    )


def init(ws: ClientConnection, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        message["payload"] = payload
    ws.send(json.dumps(message))
    answer: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return answer


def closed_with(ws: ClientConnection, payload: dict[str, Any] | None = None) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        init(ws, payload)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"Authorization": "Bearer mgw_wrong"}, {"Authorization": 42}],
    ids=["no-payload", "empty", "wrong-token", "not-a-string"],
)
def test_a_websocket_without_a_valid_credential_is_closed_with_4401(
    gateway: BackgroundServer, payload: dict[str, Any] | None
) -> None:
    with ws_connect(gateway) as ws:
        assert closed_with(ws, payload) == 4401


def test_a_websocket_may_not_subscribe_before_it_is_signed_in(gateway: BackgroundServer) -> None:
    with ws_connect(gateway) as ws:
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PROGRESS}}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


@pytest.mark.parametrize("where", ["payload", "lowercase-payload", "handshake"])
def test_a_websocket_signs_in_with_a_token_in_the_payload_or_the_handshake(
    gateway: BackgroundServer, tokens: dict[str, str], where: str
) -> None:
    token = f"Bearer {tokens['reader']}"
    headers = {"Authorization": token} if where == "handshake" else None
    payload = {"payload": {"Authorization": token}, "lowercase-payload": {"authorization": token}}
    with ws_connect(gateway, headers) as ws:
        assert init(ws, payload.get(where))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PROGRESS}}))
        message = json.loads(ws.recv(timeout=10))
        assert message["type"] == "next", message
        assert message["payload"]["data"]["importProgress"]["importing"] is False


def test_a_websocket_handshake_with_two_credentials_is_closed_with_4401(
    gateway: BackgroundServer, tokens: dict[str, str]
) -> None:
    token = f"Bearer {tokens['reader']}"
    with ws_connect(gateway, [("Authorization", token), ("Authorization", token)]) as ws:
        assert closed_with(ws) == 4401


def test_websocket_operations_are_checked_against_the_tokens_scopes(
    gateway: BackgroundServer, tokens: dict[str, str]
) -> None:
    with ws_connect(gateway) as ws:
        init(ws, {"Authorization": f"Bearer {tokens['writer']}"})
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PROGRESS}}))
        message = json.loads(ws.recv(timeout=10))
        assert message["type"] in ("next", "error"), message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
    with ws_connect(gateway) as ws:
        init(ws, {"Authorization": f"Bearer {tokens['reader']}"})
        ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": {"query": MUTATION}}))
        message = json.loads(ws.recv(timeout=10))
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]


# --- introspection and GraphiQL switches ------------------------------------------------------


INTROSPECTION = "{ __schema { queryType { name } } }"


def test_with_introspection_off_only_admin_tokens_may_introspect(
    start: Start, tokens: dict[str, str]
) -> None:
    gateway = start(graphql_introspection=False)
    response = gql(gateway.url, INTROSPECTION, headers=bearer(tokens["both"]))
    assert response.status_code == 403
    assert error_of(response) == {"message": "introspection is switched off", "code": "FORBIDDEN"}
    hidden = '{ bootResources { id } ...on Query { __type(name: "BootResource") { name } } }'
    assert error_of(gql(gateway.url, hidden, headers=bearer(tokens["both"])))["code"] == (
        "FORBIDDEN"
    )
    assert gql(gateway.url, "{ __typename }", headers=bearer(tokens["both"])).json() == {
        "data": {"__typename": "Query"}
    }
    admin = gql(gateway.url, INTROSPECTION, headers=bearer(tokens["boss"]))
    assert admin.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


def test_introspection_is_on_by_default(gateway: BackgroundServer, tokens: dict[str, str]) -> None:
    response = gql(gateway.url, INTROSPECTION, headers=bearer(tokens["reader"]))
    assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


def test_graphiql_can_be_switched_off(start: Start, tokens: dict[str, str]) -> None:
    gateway = start(graphiql=False)
    page = httpx.get(f"{gateway.url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "GraphiQL" not in page.text
    assert gql(gateway.url, QUERY, headers=bearer(tokens["reader"])).status_code == 200
