"""The entry pipeline: a stored answer has the same checks, answer and records as any request,
never reaches the app, and every other request reaches the app untouched."""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.trace import SpanKind
from starlette.types import Message, Receive, Scope, Send

from app.cli.server import BackgroundServer
from app.http.pipeline import Pipeline
from app.main import create_app
from app.observability.context import REQUEST_ID_HEADER
from tests.conftest import ADMIN_KEY
from tests.gateway import (
    GatewayFactory,
    bearer,
    gateway_settings,
    gql,
    reset_counts,
    upstream_counts,
    write_tokens,
)
from tests.observability_support import captured_log, scrape, traced_gateway, value, wait_for

QUERY = "query Names { bootResources { id name sets { version } } }"
REQUESTS = "maas_gateway_http_requests_total"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> BackgroundServer:
    return start_gateway()


class CountingApp:
    """Stands between the pipeline and the app behind it, counting the requests the app gets
    and keeping the body each was given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        self.calls += 1
        chunks: list[bytes] = []

        async def keeping() -> Any:
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        try:
            await self.inner(scope, keeping, send)
        finally:
            self.bodies.append(b"".join(chunks))


@pytest.fixture
async def in_process(simulator: BackgroundServer) -> AsyncIterator[tuple[Any, CountingApp]]:
    app = create_app(gateway_settings(simulator.url, ADMIN_KEY, readiness_probe_interval=60))
    assert isinstance(app.entry, Pipeline)
    counting = CountingApp(app.entry.app)
    app.entry.app = counting
    async with LifespanManager(app):
        yield app, counting


async def _post(app: Any, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post("/graphql", json=body)


@pytest.mark.anyio
async def test_a_stored_answer_never_reaches_the_app(
    in_process: tuple[Any, CountingApp],
) -> None:
    app, inner = in_process
    first = await _post(app, {"query": QUERY})
    assert first.headers["x-cache"] == "MISS"
    assert inner.calls == 1
    repeat = await _post(app, {"query": QUERY})
    assert repeat.headers["x-cache"] == "HIT"
    assert repeat.content == first.content
    assert inner.calls == 1


@pytest.mark.anyio
async def test_a_miss_reaches_the_app_once_with_its_body_intact(
    in_process: tuple[Any, CountingApp],
) -> None:
    app, inner = in_process
    await _post(app, {"query": QUERY})
    other = {"query": QUERY, "variables": {"unused": 1}}
    response = await _post(app, other)
    assert response.status_code == 200
    assert inner.calls == 2
    assert b'"unused":1' in inner.bodies[1]
    # A mutation is never answered from a stored one, and reaches the inner as sent.
    mutation = {"query": "mutation { stopImport { errors { message } } }"}
    assert (await _post(app, mutation)).status_code == 200
    assert inner.calls == 3
    assert b"stopImport" in inner.bodies[2]


class ServerCycle:
    """What uvicorn hands an app for one request: the scope, and a send that is a method of an
    object holding that scope."""

    def __init__(self, body: bytes) -> None:
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"gateway"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        self.body = body
        self.messages: list[Message] = []

    async def receive(self) -> Message:
        return {"type": "http.request", "body": self.body, "more_body": False}

    async def send(self, message: Message) -> None:
        self.messages.append(message)


@pytest.mark.anyio
async def test_a_stored_answer_leaves_no_reference_cycle_behind(
    in_process: tuple[Any, CountingApp],
) -> None:
    # A cycle would keep every request's scope and body alive until the collector ran.
    app, _ = in_process
    await _post(app, {"query": QUERY})
    body = orjson.dumps({"query": QUERY})
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            cycle = ServerCycle(body)
            await app(cycle.scope, cycle.receive, cycle.send)
            assert (b"x-cache", b"HIT") in cycle.messages[0]["headers"]
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0


def test_a_stored_answer_is_the_one_the_app_gave(gateway: BackgroundServer) -> None:
    fresh = gql(gateway.url, QUERY)
    # A header given twice changes nothing: the pipeline reads the head once, whatever it holds.
    stored = [
        gql(gateway.url, QUERY),
        httpx.post(
            f"{gateway.url}/graphql",
            json={"query": QUERY},
            headers=[("Accept", "application/json"), ("Accept", "*/*")],
        ),
    ]
    assert fresh.headers["x-cache"] == "MISS"
    for response in stored:
        assert response.status_code == 200
        assert response.headers["x-cache"] == "HIT"
        assert response.content == fresh.content
        for header in ("content-type", "content-length"):
            assert response.headers[header] == fresh.headers[header]
        assert GENERATED_ID.fullmatch(response.headers[REQUEST_ID_HEADER])


def test_a_stored_answer_returns_the_callers_request_id_or_one_of_ours(
    gateway: BackgroundServer,
) -> None:
    gql(gateway.url, QUERY)
    taken = gql(gateway.url, QUERY, headers={REQUEST_ID_HEADER: "ui-7f3a"})
    assert taken.headers["x-cache"] == "HIT"
    assert taken.headers[REQUEST_ID_HEADER] == "ui-7f3a"
    forged = gql(gateway.url, QUERY, headers={REQUEST_ID_HEADER: "bad id\twith tabs"})
    assert forged.headers["x-cache"] == "HIT"
    assert GENERATED_ID.fullmatch(forged.headers[REQUEST_ID_HEADER])
    ids = {gql(gateway.url, QUERY).headers[REQUEST_ID_HEADER] for _ in range(5)}
    assert len(ids) == 5


def test_stored_answers_are_counted_and_logged_like_any_request(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    tokens = write_tokens(tmp_path / "tokens", ui="read")
    gateway = start_gateway(tokens_file=str(tmp_path / "tokens"))
    ui = bearer(tokens["ui"])
    gql(gateway.url, QUERY, headers=ui)
    first = httpx.get(f"{gateway.url}/api/v1/boot-sources", headers=ui)
    before = scrape(gateway.url)
    with captured_log() as log:
        hit = gql(gateway.url, QUERY, headers={**ui, REQUEST_ID_HEADER: "hit-graphql"})
        read = httpx.get(
            f"{gateway.url}/api/v1/boot-sources", headers={**ui, REQUEST_ID_HEADER: "hit-rest"}
        )
        unchanged = httpx.get(
            f"{gateway.url}/api/v1/boot-sources",
            headers={**ui, REQUEST_ID_HEADER: "hit-304", "If-None-Match": first.headers["etag"]},
        )
    assert [hit.headers["x-cache"], read.headers["x-cache"]] == ["HIT", "HIT"]
    assert unchanged.status_code == 304
    assert unchanged.headers[REQUEST_ID_HEADER] == "hit-304"
    after = scrape(gateway.url)

    def counted(**labels: str) -> float:
        return value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels)

    assert counted(api="graphql", operation="query bootResources", status="200") == 1
    assert counted(api="rest", operation="list_boot_sources", status="200") == 1
    assert counted(api="rest", operation="list_boot_sources", status="304") == 1
    lines = {line["request_id"]: line for line in log.access()}
    for request_id, api, operation, status in (
        ("hit-graphql", "graphql", "query bootResources", 200),
        ("hit-rest", "rest", "list_boot_sources", 200),
        ("hit-304", "rest", "list_boot_sources", 304),
    ):
        line = lines[request_id]
        assert (line["api"], line["operation"], line["status"], line["cache"]) == (
            api,
            operation,
            status,
            "HIT",
        )
        assert line["upstream_calls"] == 0
        assert line["principal"].startswith("token:")
        assert tokens["ui"] not in str(line)


def test_a_stored_answer_is_refused_to_a_wrong_credential_and_over_the_rate(
    start_gateway: GatewayFactory, tmp_path: Path, simulator: BackgroundServer
) -> None:
    tokens = write_tokens(tmp_path / "tokens", ui="read", writer="write")
    gateway = start_gateway(
        tokens_file=str(tmp_path / "tokens"), rate_limit_per_second=0.01, rate_limit_burst=2
    )
    assert gql(gateway.url, QUERY, headers=bearer(tokens["ui"])).status_code == 200
    reset_counts(simulator.url)
    refused = gql(gateway.url, QUERY, headers=bearer("mgw_wrong"))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    forbidden = gql(gateway.url, QUERY, headers=bearer(tokens["writer"]))
    assert forbidden.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The miss took one request of the burst of two, the hit the other: the next is refused.
    assert gql(gateway.url, QUERY, headers=bearer(tokens["ui"])).headers["x-cache"] == "HIT"
    limited = gql(gateway.url, QUERY, headers=bearer(tokens["ui"]))
    assert limited.status_code == 429
    assert limited.headers["retry-after"]
    assert upstream_counts(simulator.url) == {}


def test_chunked_and_get_requests_for_a_stored_answer_are_answered_from_it(
    gateway: BackgroundServer,
) -> None:
    first = gql(gateway.url, QUERY)

    def chunks() -> Iterator[bytes]:
        yield b'{"query": '
        yield httpx.Response(200, json=QUERY).content + b"}"

    chunked = httpx.post(
        f"{gateway.url}/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in chunked.request.headers
    assert chunked.headers["x-cache"] == "HIT"
    assert chunked.content == first.content
    httpx.get(f"{gateway.url}/graphql", params={"query": QUERY})
    by_get = httpx.get(f"{gateway.url}/graphql", params={"query": QUERY})
    assert by_get.headers["x-cache"] == "HIT"
    assert by_get.content == first.content


def test_a_body_over_the_limit_is_refused_before_any_stored_answer(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(max_request_bytes=300)
    small = "{ bootResources { id } }"
    gql(gateway.url, small)
    assert gql(gateway.url, small).headers["x-cache"] == "HIT"
    padded = {"query": small, "variables": {"padding": "x" * 400}}
    assert httpx.post(f"{gateway.url}/graphql", json=padded).status_code == 413


def test_with_tracing_on_a_stored_answer_gets_its_server_span(
    simulator: BackgroundServer,
) -> None:
    with traced_gateway(simulator.url) as (gateway, exporter):
        gql(gateway.url, QUERY)
        exporter.clear()
        assert gql(gateway.url, QUERY).headers["x-cache"] == "HIT"
        wait_for(lambda: any(s.kind is SpanKind.SERVER for s in exporter.get_finished_spans()))
    [server] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "POST /graphql"
    assert dict(server.attributes or {})["maas_gateway.operation"] == "query bootResources"
