"""Hostile input gets a clear 4xx or GraphQL error: never a 5xx, a hang or an internal error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings, running_gateway

MAX_REQUEST = 64 * 1024
MAX_UPLOAD = 1024 * 1024
JSON = {"content-type": "application/json"}
OCTETS = {"content-type": "application/octet-stream"}
UPLOAD = {"name": "custom/hostile", "architecture": "amd64/generic"}


@pytest.fixture(scope="module")
def client(simulator_server: BackgroundServer) -> Iterator[httpx.Client]:
    """One gateway for the module: nothing here may change MAAS, so no reset is needed."""
    settings = gateway_settings(
        simulator_server.url,
        ADMIN_KEY,
        max_request_bytes=MAX_REQUEST,
        max_upload_bytes=MAX_UPLOAD,
        graphql_max_depth=6,
    )
    with (
        running_gateway(settings) as gateway,
        httpx.Client(base_url=gateway.url, timeout=30) as client,
    ):
        yield client


def rest_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"], error
    return error


def graphql_codes(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    return [e["extensions"]["code"] for e in body["errors"]]


def gql(client: httpx.Client, query: str, **extra: Any) -> httpx.Response:
    return client.post("/graphql", json={"query": query, **extra})


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"url": ', JSON),
        (b"[1, 2]", JSON),
        (b'{"url": "http://x.example.com/"}', {"content-type": "text/plain"}),
        (b'{"url": "http://x.example.com/"}', {"content-type": "application/xml"}),
        (b"url=http://x.example.com/", {"content-type": "application/x-www-form-urlencoded"}),
        (b"\xff\xfe\x00", JSON),
        (b'{"url": 5}', JSON),
    ],
    ids=["truncated", "array", "text", "xml", "form", "binary", "wrong_type"],
)
def test_rest_rejects_a_malformed_body_or_content_type_with_400(
    client: httpx.Client, body: bytes, headers: dict[str, str]
) -> None:
    rest_error(
        client.post("/api/v1/boot-sources", content=body, headers=headers), 400, "VALIDATION"
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"url": "' + b"a" * (2 * MAX_REQUEST) + b'"}',
        b"[" * MAX_REQUEST + b"]" * MAX_REQUEST,
    ],
    ids=["huge", "deep"],
)
def test_rest_rejects_an_oversized_body_with_413(client: httpx.Client, body: bytes) -> None:
    error = rest_error(
        client.post("/api/v1/boot-sources", content=body, headers=JSON), 413, "PAYLOAD_TOO_LARGE"
    )
    assert error["details"] == {"limit": MAX_REQUEST}


def test_rest_rejects_deeply_nested_json_within_the_size_limit_with_400(
    client: httpx.Client,
) -> None:
    body = b'{"url": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = client.post("/api/v1/boot-sources", content=body, headers=JSON)
    rest_error(response, 400, "VALIDATION")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/boot-sources/abc",
        "/api/v1/boot-sources/-1",
        "/api/v1/boot-sources/1.5",
        "/api/v1/boot-sources/99999999999999999999999",
        "/api/v1/boot-sources/1/selections/x",
        "/api/v1/boot-resources/%00",
    ],
)
def test_rest_rejects_an_invalid_id_with_400(client: httpx.Client, path: str) -> None:
    rest_error(client.get(path), 400, "VALIDATION")


def test_rest_rejects_invalid_base64_with_400(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/boot-sources",
        json={"url": "http://hostile.example.com/", "keyring_data": "not base64!"},
    )
    assert "keyring_data" in rest_error(response, 400, "VALIDATION")["details"]["fields"]


def test_rest_answers_unknown_routes_and_methods_in_the_error_envelope(
    client: httpx.Client,
) -> None:
    rest_error(client.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
    rest_error(client.delete("/api/v1/boot-sources"), 405, "METHOD_NOT_ALLOWED")


def test_rest_rejects_an_oversized_upload_declared_up_front_with_413(
    client: httpx.Client,
) -> None:
    params = {**UPLOAD, "size": str(2 * MAX_UPLOAD)}
    response = client.post(
        "/api/v1/boot-resources", params=params, content=b"a" * (2 * MAX_UPLOAD), headers=OCTETS
    )
    rest_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_rest_rejects_an_oversized_upload_of_unknown_size_with_413(
    client: httpx.Client,
) -> None:
    chunks = iter([b"a" * (256 * 1024)] * 8)  # chunked: no Content-Length to refuse up front
    response = client.post("/api/v1/boot-resources", params=UPLOAD, content=chunks, headers=OCTETS)
    rest_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_rest_rejects_invalid_upload_parameters_with_400(client: httpx.Client) -> None:
    params = {**UPLOAD, "sha256": "not-hex", "size": "-5"}
    response = client.post("/api/v1/boot-resources", params=params, content=b"x", headers=OCTETS)
    rest_error(response, 400, "VALIDATION")


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"query": ', JSON),
        (b"{ bootSources { id } }", {"content-type": "text/plain"}),
        (b"{}", JSON),
        (b'{"query": 5}', JSON),
        (b'{"query": "{ bootSources { id } }", "variables": [1]}', JSON),
        (b'[{"query": "{ bootSources { id } }"}]', JSON),
        (b'{"query": "query A { bootSources { id } }", "operationName": "B"}', JSON),
        (b'{"query": "subscription { importProgress { __typename } }"}', JSON),
    ],
    ids=[
        "truncated",
        "text",
        "no_query",
        "query_not_string",
        "variables_not_object",
        "batch",
        "unknown_operation",
        "subscription_over_http",
    ],
)
def test_graphql_rejects_a_malformed_request_with_400(
    client: httpx.Client, content: bytes, headers: dict[str, str]
) -> None:
    response = client.post("/graphql", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert response.text


def test_graphql_refuses_a_mutation_over_get_with_405_and_allow(client: httpx.Client) -> None:
    query = "mutation { startImport { errors { code } } }"
    response = client.get("/graphql", params={"query": query})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_graphql_rejects_an_oversized_document_with_413(client: httpx.Client) -> None:
    response = gql(client, "{ bootSources { id } }" + " " * (2 * MAX_REQUEST))
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    "query",
    [
        "{ "
        + "__schema { types { fields { type { ofType { " * 3
        + "name"
        + " } } } } }" * 3
        + " }",
        "{ " + " ".join(f"a{i}: bootSources {{ id }}" for i in range(100)) + " }",
        "fragment F on Query { " + " ".join(f"a{i}: __typename" for i in range(40)) + " } { ...F }",
        "{ bootSources { " + " ".join(["id"] * 3000) + " } }",
        "fragment A on Query { ...B } fragment B on Query { ...A } { ...A }",
        "{ nope }",
        "{ bootSources { id ",
        "query($id: ID!) { bootSource(id: $id) { id } }",
    ],
    ids=[
        "deep",
        "alias_bomb",
        "alias_bomb_in_fragment",
        "wide",
        "fragment_cycle",
        "unknown_field",
        "syntax",
        "missing_variable",
    ],
)
def test_graphql_rejects_a_hostile_document_before_execution(
    client: httpx.Client, query: str
) -> None:
    codes = graphql_codes(gql(client, query))
    assert codes and set(codes) <= {"GRAPHQL_VALIDATION", "VALIDATION", "BAD_USER_INPUT"}, codes


@pytest.mark.parametrize(
    "id", ["abc", "-1", "1.5", "+7", " 7", "1_000", "0", "9223372036854775808", "9" * 5000, ""]
)
def test_graphql_rejects_an_invalid_id_with_a_validation_error(
    client: httpx.Client, id: str
) -> None:
    response = gql(client, "query($id: ID!) { bootSource(id: $id) { id } }", variables={"id": id})
    assert graphql_codes(response) == ["VALIDATION"]


def test_graphql_rejects_invalid_base64_as_a_user_error(client: httpx.Client) -> None:
    query = """mutation($input: CreateBootSourceInput!) {
      createBootSource(input: $input) { bootSource { id } errors { code field } }
    }"""
    variables = {"input": {"url": "http://hostile.example.com/", "keyringData": "not base64!"}}
    payload = gql(client, query, variables=variables).json()["data"]["createBootSource"]
    assert payload == {
        "bootSource": None,
        "errors": [{"code": "VALIDATION", "field": "keyringData"}],
    }


def test_graphql_rejects_an_oversized_multipart_upload_with_413(client: httpx.Client) -> None:
    operations = (
        '{"query": "mutation($file: Upload!, $input: UploadBootResourceInput!) '
        '{ uploadBootResource(file: $file, input: $input) { errors { code } } }", '
        '"variables": {"file": null, "input": {"name": "custom/hostile", '
        '"architecture": "amd64/generic"}}}'
    )
    response = client.post(
        "/graphql",
        data={"operations": operations, "map": '{"0": ["variables.file"]}'},
        files={"0": ("image.tgz", b"a" * (2 * MAX_UPLOAD), "application/octet-stream")},
        headers={"Apollo-Require-Preflight": "true"},
    )
    assert response.status_code == 413, response.text
