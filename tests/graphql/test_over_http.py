"""GraphQL over HTTP as the spec and graphql-http's audits define it: media types, request
errors in GraphQL's shape, status codes (docs/architecture.md, "GraphQL over HTTP")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli.server import BackgroundServer
from tests.gateway import GatewayFactory, bearer, write_tokens
from tests.graphql.node import run_client

GRAPHQL_RESPONSE = "application/graphql-response+json"
NEW = {"accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9"}
QUERY = "{ bootSources { id url } }"


@pytest.fixture
def client(gateway: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def request_error(response: httpx.Response, status: int, media_type: str) -> str:
    """The code of a request error: the status, the media type, `errors` and no `data`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == media_type
    body = response.json()
    assert "data" not in body, body
    assert body["errors"][0]["message"], body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


def test_graphql_http_audits_all_pass(gateway: BackgroundServer) -> None:
    """graphql-http's auditServer: every MUST, SHOULD and MAY of the spec, twice (the second
    round is answered from stored answers where it may be)."""
    for _ in range(2):
        results = run_client("audit.mjs", f"{gateway.url}/graphql")
        failed = [r for r in results if r["status"] != "ok"]
        assert len(results) >= 60 and not failed, failed


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"application/json;q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.4, application/json", "application/json"),
        (f"{GRAPHQL_RESPONSE};q=0, application/json;q=0.1", "application/json"),
        ("text/html", "application/json"),
    ],
)
def test_the_answer_takes_the_media_type_the_client_prefers(
    client: httpx.Client, accept: str | None, media_type: str
) -> None:
    headers = {"accept": accept} if accept else {}
    for cache in ("MISS", "HIT"):  # the stored answer follows the asker's Accept too
        response = client.post("/graphql", json={"query": QUERY}, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == media_type
        assert response.headers["x-cache"] == cache
        assert response.json()["data"]["bootSources"]


def test_a_stored_answer_serves_each_asker_its_own_media_type(client: httpx.Client) -> None:
    assert client.post("/graphql", json={"query": QUERY}).headers["x-cache"] == "MISS"
    response = client.post("/graphql", json={"query": QUERY}, headers=NEW)
    assert response.headers["x-cache"] == "HIT"
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert response.headers.get_list("content-type") == [GRAPHQL_RESPONSE]


@pytest.mark.parametrize("document", ["{ bootSources { id ", "{ noSuchField }"])
def test_a_document_that_does_not_validate_is_a_request_error(
    client: httpx.Client, document: str
) -> None:
    new = client.post("/graphql", json={"query": document}, headers=NEW)
    assert request_error(new, 400, GRAPHQL_RESPONSE) == "GRAPHQL_VALIDATION"
    legacy = client.post("/graphql", json={"query": document})
    assert request_error(legacy, 200, "application/json") == "GRAPHQL_VALIDATION"


def test_a_variable_that_does_not_coerce_is_a_request_error(client: httpx.Client) -> None:
    query = "query ($id: ID!) { bootSource(id: $id) { id } }"
    response = client.post("/graphql", json={"query": query, "variables": {"id": [1]}}, headers=NEW)
    assert request_error(response, 400, GRAPHQL_RESPONSE) == "BAD_USER_INPUT"


@pytest.mark.parametrize("body", [b"null", b"123", b'"text"', b"true", b"{", b""])
def test_a_body_that_is_not_a_json_object_is_a_request_error(
    client: httpx.Client, body: bytes
) -> None:
    for headers in ({}, NEW):
        headers = {"content-type": "application/json", **headers}
        response = client.post("/graphql", content=body, headers=headers)
        media_type = headers.get("accept", "application/json").split(",")[0]
        assert request_error(response, 400, media_type) == "BAD_REQUEST"


def test_many_operations_and_no_operation_name_is_a_request_error(client: httpx.Client) -> None:
    document = "query A { bootSources { id } } query B { importStatus { importing } }"
    response = client.post("/graphql", json={"query": document}, headers=NEW)
    assert request_error(response, 400, GRAPHQL_RESPONSE) == "BAD_REQUEST"
    assert "operation name" in response.json()["errors"][0]["message"]
    chosen = client.post("/graphql", json={"query": document, "operationName": "B"})
    assert chosen.json() == {"data": {"importStatus": {"importing": False}}}


def test_an_unknown_operation_name_is_a_request_error(client: httpx.Client) -> None:
    body = {"query": "query A { bootSources { id } }", "operationName": "Z"}
    response = client.post("/graphql", json=body)
    assert request_error(response, 400, "application/json") == "BAD_REQUEST"
    assert response.json()["errors"][0]["message"] == "Unknown operation named 'Z'."


@pytest.mark.parametrize(("method", "allow"), [("PUT", "GET, POST"), ("DELETE", "GET, POST")])
def test_other_methods_are_405_with_allow(client: httpx.Client, method: str, allow: str) -> None:
    response = client.request(method, "/graphql", json={"query": QUERY}, headers=NEW)
    assert request_error(response, 405, GRAPHQL_RESPONSE) == "BAD_REQUEST"
    assert response.headers["allow"] == allow


def test_an_unsupported_content_type_is_a_request_error(client: httpx.Client) -> None:
    response = client.post(
        "/graphql", content=QUERY, headers={"content-type": "application/graphql", **NEW}
    )
    assert request_error(response, 400, GRAPHQL_RESPONSE) == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("credential", "status", "code"),
    [(None, 401, "UNAUTHENTICATED"), ("reader", 403, "FORBIDDEN")],
)
def test_refusals_carry_graphql_errors_in_the_asked_media_type(
    start_gateway: GatewayFactory, tmp_path: Path, credential: str | None, status: int, code: str
) -> None:
    tokens = write_tokens(tmp_path / "tokens", reader="read")
    gateway = start_gateway(tokens_file=str(tmp_path / "tokens"))
    headers = {**NEW, **(bearer(tokens[credential]) if credential else {})}
    mutation = "mutation { startImport { importing } }"
    response = httpx.post(f"{gateway.url}/graphql", json={"query": mutation}, headers=headers)
    assert request_error(response, status, GRAPHQL_RESPONSE) == code


def test_a_body_over_the_limit_is_a_413_graphql_error_in_the_asked_media_type(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(max_request_bytes=1024)
    body = {"query": QUERY + " " * 4096}
    response = httpx.post(f"{gateway.url}/graphql", json=body, headers=NEW, timeout=30)
    assert request_error(response, 413, GRAPHQL_RESPONSE) == "PAYLOAD_TOO_LARGE"


def test_a_rate_limited_request_is_a_429_graphql_error_in_the_asked_media_type(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(rate_limit_per_second=0.001, rate_limit_burst=1)
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        assert client.post("/graphql", json={"query": QUERY}, headers=NEW).status_code == 200
        refused = client.post("/graphql", json={"query": QUERY}, headers=NEW)
    assert request_error(refused, 429, GRAPHQL_RESPONSE) == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) >= 1
