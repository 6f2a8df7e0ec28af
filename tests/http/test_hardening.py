"""Hardening: rate limits, CORS, CSRF, body limits, the GraphiQL CSP and TLS to MAAS."""

from __future__ import annotations

import ast
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from app.cli.server import BackgroundServer
from app.graphql.graphiql import CONTENT_SECURITY_POLICY
from tests.conftest import ADMIN_KEY, USER_KEY
from tests.gateway import (
    GatewayFactory,
    bearer,
    gateway_settings,
    gql,
    reset_counts,
    running_gateway,
    upstream_counts,
    write_tokens,
)

APP = Path(__file__).resolve().parents[2] / "app"
QUERY = "{ bootResources { id name } }"
ORIGIN = "https://ui.example.com"


def envelope_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def graphql_codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json()["errors"]]


# --- rate limits ------------------------------------------------------------------------------


def test_a_principal_over_its_rate_gets_429_with_retry_after(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    tokens = write_tokens(tmp_path / "tokens", busy="read", calm="read")
    gateway = start_gateway(
        tokens_file=str(tmp_path / "tokens"), rate_limit_per_second=1, rate_limit_burst=3
    )
    busy, calm = bearer(tokens["busy"]), bearer(tokens["calm"])
    statuses = [gql(gateway.url, QUERY, headers=busy).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # the last ones are response-cache hits: counted too
    limited = gql(gateway.url, QUERY, headers=busy)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "1"
    assert graphql_codes(limited) == ["RATE_LIMITED"]
    assert limited.json()["errors"][0]["extensions"]["retryAfter"] == 1
    rest = httpx.get(f"{gateway.url}/api/v1/boot-resources", headers=busy)
    assert rest.status_code == 429
    assert rest.headers["retry-after"] == "1"
    assert envelope_code(rest) == "RATE_LIMITED"
    # Another principal has its own bucket.
    assert gql(gateway.url, QUERY, headers=calm).status_code == 200
    time.sleep(1.1)
    assert gql(gateway.url, QUERY, headers=busy).status_code == 200


def test_anonymous_callers_are_limited_by_address(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(anonymous_scopes="read", rate_limit_per_second=0.5, rate_limit_burst=2)
    assert [gql(gateway.url, QUERY).status_code for _ in range(3)] == [200, 200, 429]


def test_rate_limits_can_be_switched_off(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(rate_limit_per_second=0, rate_limit_burst=1)
    assert {gql(gateway.url, QUERY).status_code for _ in range(20)} == {200}


def test_websocket_sign_ins_and_operations_count_against_the_rate(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    tokens = write_tokens(tmp_path / "tokens", live="read")
    gateway = start_gateway(
        tokens_file=str(tmp_path / "tokens"), rate_limit_per_second=0.1, rate_limit_burst=2
    )
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    init = json.dumps(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {tokens['live']}"}}
    )
    query = {"query": "subscription { importProgress { importing } }"}
    with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        ws.send(init)
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
        assert json.loads(ws.recv(timeout=10))["type"] == "next"
        ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": query}))
        message = json.loads(ws.recv(timeout=10))
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["RATE_LIMITED"]
    with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        ws.send(init)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429


# --- CORS -------------------------------------------------------------------------------------


def preflight(gateway: BackgroundServer, path: str, origin: str, headers: str) -> httpx.Response:
    return httpx.options(
        f"{gateway.url}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def test_cors_answers_listed_origins_only(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(cors_origins=f"{ORIGIN}, https://other.example.com:8443")
    allowed = preflight(gateway, "/graphql", ORIGIN, "authorization,content-type")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    refused = preflight(gateway, "/graphql", "https://evil.example.net", "authorization")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    rest = preflight(gateway, "/api/v1/boot-sources", "https://other.example.com:8443", "x")
    assert rest.headers["access-control-allow-origin"] == "https://other.example.com:8443"


def test_cors_headers_reach_refusals_and_stored_answers(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(cors_origins=ORIGIN, anonymous_scopes="read")
    origin = {"Origin": ORIGIN}
    first = gql(gateway.url, QUERY, headers=origin)
    hit = gql(gateway.url, QUERY, headers=origin)
    assert hit.headers["x-cache"] == "HIT"
    for response in (first, hit):
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "x-cache" in response.headers["access-control-expose-headers"].lower()
    refused = gql(gateway.url, QUERY, headers={**origin, **bearer("mgw_wrong")})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    foreign = gql(gateway.url, QUERY, headers={"Origin": "https://evil.example.net"})
    assert "access-control-allow-origin" not in foreign.headers


def test_without_cors_origins_no_cors_headers_are_sent(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    response = gql(gateway.url, QUERY, headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
    assert preflight(gateway, "/graphql", ORIGIN, "authorization").status_code == 405


def ws_handshake(gateway: BackgroundServer, origin: str) -> int:
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    try:
        with connect(
            url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            origin=origin,  # type: ignore[arg-type]
        ) as ws:
            ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
            return 101
    except InvalidStatus as refused:
        status: int = refused.response.status_code
        return status


def test_websockets_from_other_origins_need_the_allow_list(start_gateway: GatewayFactory) -> None:
    listed = start_gateway(cors_origins=ORIGIN)
    unlisted = start_gateway()
    for gateway, origin, accepted in (
        (listed, ORIGIN, True),
        (listed, "https://evil.example.net", False),
        (unlisted, ORIGIN, False),
    ):
        assert ws_handshake(gateway, origin) == (101 if accepted else 403), origin
    # Clients that are not browsers send no Origin and are not affected.
    with connect(
        unlisted.url.replace("http://", "ws://") + "/graphql", subprotocols=["graphql-transport-ws"]
    ) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"


# --- CSRF -------------------------------------------------------------------------------------


def test_graphql_requests_a_form_could_send_are_refused(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    """Forms post multipart, urlencoded or text/plain cross-site without a preflight; the
    gateway runs none of them (strawberry CVE-2024-47082), even with anonymous write."""
    gateway = start_gateway()
    mutation = "mutation { startImport { importing } }"
    reset_counts(simulator.url)
    multipart = httpx.post(
        f"{gateway.url}/graphql",
        data={"operations": json.dumps({"query": mutation}), "map": "{}"},
        files={"unused": ("x", b"x")},
    )
    assert multipart.status_code == 400
    assert "Apollo-Require-Preflight" in multipart.text
    form = httpx.post(f"{gateway.url}/graphql", data={"query": mutation})
    plain = httpx.post(
        f"{gateway.url}/graphql",
        content=json.dumps({"query": mutation}),
        headers={"Content-Type": "text/plain"},
    )
    get = httpx.get(f"{gateway.url}/graphql", params={"query": mutation})
    for response in (form, plain, get):
        assert response.status_code in (400, 405, 415), response.text
    assert upstream_counts(simulator.url) == {}
    with_header = httpx.post(
        f"{gateway.url}/graphql",
        data={"operations": json.dumps({"query": mutation}), "map": "{}"},
        files={"unused": ("x", b"x")},
        headers={"Apollo-Require-Preflight": "true"},
    )
    assert with_header.json() == {"data": {"startImport": {"importing": True}}}


def test_the_preflight_header_is_refused_to_unlisted_origins(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(cors_origins=ORIGIN)
    refused = preflight(gateway, "/graphql", "https://evil.example.net", "apollo-require-preflight")
    assert "access-control-allow-origin" not in refused.headers


# --- body limits ------------------------------------------------------------------------------


def test_json_bodies_over_the_limit_are_refused_with_413(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(max_request_bytes=2048)
    big = {"url": "http://example.com/" + "a" * 4000, "keyring_filename": "/k.gpg"}
    rest = httpx.post(f"{gateway.url}/api/v1/boot-sources", json=big)
    assert rest.status_code == 413
    assert rest.json()["error"] == {
        "code": "PAYLOAD_TOO_LARGE",
        "message": "the request body is larger than 2048 bytes",
        "details": {"limit": 2048},
    }
    graphql = gql(gateway.url, "{ bootResources { id } }" + " " * 4000)
    assert graphql.status_code == 413
    assert graphql_codes(graphql) == ["PAYLOAD_TOO_LARGE"]
    assert gql(gateway.url, QUERY).status_code == 200


def test_chunked_bodies_are_stopped_at_the_limit(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(max_request_bytes=2048)

    def chunks() -> Iterator[bytes]:
        yield b'{"query": "{ bootResources { id } }", "pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    for path in ("/graphql", "/api/v1/boot-sources"):
        response = httpx.post(
            f"{gateway.url}{path}", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413, (path, response.text)
        assert "2048" in response.text


def test_uploads_may_be_larger_than_json_bodies_up_to_their_own_limit(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(max_request_bytes=2048, max_upload_bytes=64 * 1024)
    image = b"\x1f\x8b" + bytes(20 * 1024)
    params = {"name": "custom/limits", "architecture": "amd64/generic"}
    created = httpx.post(f"{gateway.url}/api/v1/boot-resources", params=params, content=image)
    assert created.status_code == 201, created.text
    too_big = httpx.post(
        f"{gateway.url}/api/v1/boot-resources", params=params, content=bytes(65 * 1024)
    )
    assert too_big.status_code == 413
    operations = {
        "query": "mutation($f: Upload!) { uploadBootResource(file: $f, input: "
        '{name: "custom/big", architecture: "amd64/generic"}) { errors { code } } }',
        "variables": {"f": None},
    }
    multipart = httpx.post(
        f"{gateway.url}/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.f"]})},
        files={"0": ("big.tgz", bytes(80 * 1024), "application/octet-stream")},
        headers={"Apollo-Require-Preflight": "true"},
    )
    assert multipart.status_code == 413
    assert graphql_codes(multipart) == ["PAYLOAD_TOO_LARGE"]


# --- GraphiQL ---------------------------------------------------------------------------------


def test_the_graphiql_page_carries_a_strict_content_security_policy(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway()
    page = httpx.get(f"{gateway.url}/graphql", headers={"Accept": "text/html"})
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    # tests/graphql/test_graphiql.py drives this very page in Chromium and finds no violation.


# --- TLS to MAAS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture(scope="module")
def https_simulator(certificate: tuple[Path, Path]) -> Iterator[str]:
    from app.simulator import SimulatorConfig, create_simulator

    key, cert = certificate
    config = SimulatorConfig(admin_key=ADMIN_KEY, user_key=USER_KEY, seed=1)
    with BackgroundServer(
        create_simulator(config), ssl_keyfile=str(key), ssl_certfile=str(cert)
    ) as server:
        yield server.url.replace("http://", "https://")


def test_tls_to_maas_is_verified_so_a_self_signed_certificate_is_refused(
    https_simulator: str,
) -> None:
    settings = gateway_settings(https_simulator, ADMIN_KEY, maas_retries=0)
    assert settings.maas_ca_bundle is None
    with running_gateway(settings) as gateway:
        response = httpx.get(f"{gateway.url}/api/v1/boot-resources", timeout=30)
    assert response.status_code == 503
    assert envelope_code(response) == "UPSTREAM_UNAVAILABLE"


def test_tls_to_maas_trusts_the_configured_ca_bundle(
    https_simulator: str, certificate: tuple[Path, Path]
) -> None:
    settings = gateway_settings(https_simulator, ADMIN_KEY, maas_ca_bundle=str(certificate[1]))
    with running_gateway(settings) as gateway:
        response = httpx.get(f"{gateway.url}/api/v1/boot-resources", timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()


def test_no_code_turns_certificate_verification_off() -> None:
    """There is no setting for it, and nothing in the gateway passes verify=False or lowers
    an SSL context's checks (the simulator is a test server and is skipped)."""
    offenders = []
    for path in APP.rglob("*.py"):
        if "simulator" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.keyword)
                and node.arg in ("verify", "ssl")
                and isinstance(node.value, ast.Constant)
                and node.value.value is False
            ):
                offenders.append(f"{path}:{node.value.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in (
                "CERT_NONE",
                "_create_unverified_context",
            ):
                offenders.append(f"{path}:{node.lineno}")
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "check_hostname" for t in node.targets
            ):
                offenders.append(f"{path}:{node.lineno}")
    assert offenders == []
    from app.core.settings import Settings

    assert not [name for name in Settings.model_fields if "verify" in name or "insecure" in name]
