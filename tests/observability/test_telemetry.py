"""Metrics, the access log line, the request id and spans, seen from outside a real gateway."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from app.cli.server import BackgroundServer
from app.core.settings import Settings
from app.maas.auth import MaasCredentials
from app.observability.context import REQUEST_ID_HEADER
from app.observability.logs import JsonFormatter, JsonLinesHandler, TextFormatter, configure_logging
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings, gql, running_gateway, set_faults
from tests.observability_support import (
    captured_log,
    label_values,
    scrape,
    traced_gateway,
    value,
    wait_for,
)

REQUESTS = "maas_gateway_http_requests_total"
DURATION_COUNT = "maas_gateway_http_request_duration_seconds_count"
UPSTREAM = "maas_gateway_upstream_requests_total"
UPSTREAM_COUNT = "maas_gateway_upstream_request_duration_seconds_count"
CACHE = "maas_gateway_cache_requests_total"
NESTED = "{ bootResources { id name sets { version files { filename } } } }"


@pytest.fixture
def gateway(start_gateway: Any) -> BackgroundServer:
    server: BackgroundServer = start_gateway()
    return server


# --- request metrics --------------------------------------------------------------------------


def test_request_metrics_count_graphql_operations_by_root_fields(
    gateway: BackgroundServer,
) -> None:
    for _ in range(3):  # a miss, then answers from the response cache at the edge
        assert gql(gateway.url, NESTED).status_code == 200
    gql(gateway.url, "query Named { b: bootSources { id } a: bootResources { id } }")
    samples = scrape(gateway.url)
    labels = {"api": "graphql", "operation": "query bootResources", "status": "200"}
    assert value(samples, REQUESTS, **labels) == 3
    assert value(samples, DURATION_COUNT, api="graphql", operation="query bootResources") == 3
    both = {"api": "graphql", "operation": "query bootResources,bootSources", "status": "200"}
    assert value(samples, REQUESTS, **both) == 1


def test_request_metrics_count_rest_routes_by_name_and_status(gateway: BackgroundServer) -> None:
    httpx.get(f"{gateway.url}/api/v1/boot-sources").raise_for_status()
    assert httpx.get(f"{gateway.url}/api/v1/boot-resources/999999").status_code == 404
    assert httpx.get(f"{gateway.url}/api/v1/no/such/thing/42").status_code == 404
    samples = scrape(gateway.url)
    assert value(samples, REQUESTS, api="rest", operation="list_boot_sources", status="200") == 1
    assert value(samples, REQUESTS, api="rest", operation="get_boot_resource", status="404") == 1
    assert value(samples, REQUESTS, api="rest", operation="unrouted", status="404") == 1
    assert value(samples, DURATION_COUNT, api="rest", operation="list_boot_sources") == 1


def test_graphql_errors_are_counted_by_operation_and_code(gateway: BackgroundServer) -> None:
    gql(gateway.url, "{ noSuchField }")
    gql(gateway.url, 'query { bootResource(id: "x") { id } }')
    samples = scrape(gateway.url)
    errors = "maas_gateway_graphql_errors_total"
    assert value(samples, errors, operation="invalid", code="GRAPHQL_VALIDATION") == 1
    assert value(samples, errors, operation="query bootResource", code="VALIDATION") == 1


def test_label_values_stay_bounded_whatever_callers_send(gateway: BackgroundServer) -> None:
    for i in range(30):
        gql(gateway.url, f"query Op{i} {{ alias{i}: bootSources {{ id }} }}")
        gql(gateway.url, f"{{ unknown{i} }}")
        httpx.get(f"{gateway.url}/api/v1/boot-resources/{i + 1000}")
        httpx.get(f"{gateway.url}/api/v1/random-{i}")
        httpx.get(f"{gateway.url}/random-{i}")
    samples = scrape(gateway.url)
    operations = label_values(samples, REQUESTS, "operation")
    assert not [op for op in operations if re.search(r"\d", op)], operations
    assert {"query bootSources", "invalid", "get_boot_resource", "unrouted"} <= operations
    assert not [e for e in label_values(samples, UPSTREAM, "endpoint") if re.search(r"\d", e)], (
        "upstream endpoints are named by operation, never by path"
    )


def test_in_flight_gauge_counts_requests_being_answered(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    set_faults(simulator.url, {"path": "boot-sources", "latency_ms": 1500})
    in_flight = "maas_gateway_http_requests_in_flight"
    with ThreadPoolExecutor(3) as pool:
        pending = [
            pool.submit(httpx.get, f"{gateway.url}/api/v1/boot-sources", timeout=30)
            for _ in range(3)
        ]
        wait_for(lambda: value(scrape(gateway.url), in_flight, api="rest") == 3)
        assert all(p.result().status_code == 200 for p in pending)
    samples = scrape(gateway.url)
    assert value(samples, in_flight, api="rest") == 0
    # The scrape itself is the one internal request in flight.
    assert value(samples, in_flight, api="internal") == 1


# --- upstream metrics -------------------------------------------------------------------------


def test_upstream_metrics_count_exchanges_by_endpoint_method_and_status(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(maas_retries=2, maas_retry_backoff=0.0)
    httpx.get(f"{gateway.url}/api/v1/boot-sources").raise_for_status()
    set_faults(simulator.url, {"path": "boot-sources/1/selections", "status": 503})
    assert httpx.get(f"{gateway.url}/api/v1/boot-sources/1/selections").status_code == 503
    samples = scrape(gateway.url)
    ok = {"endpoint": "boot-sources read", "method": "GET", "status": "200"}
    assert value(samples, UPSTREAM, **ok) == 1
    failed = {"endpoint": "boot-source-selections read", "method": "GET", "status": "503"}
    assert value(samples, UPSTREAM, **failed) == 3, "each retry is an exchange"
    timed = {"endpoint": "boot-source-selections read", "method": "GET"}
    assert value(samples, UPSTREAM_COUNT, **timed) == 3
    assert value(samples, UPSTREAM_COUNT, endpoint="boot-sources read", method="GET") == 1


def test_upstream_failures_without_a_response_are_counted_by_error_code(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(maas_timeout=0.3, maas_retries=0)
    set_faults(simulator.url, {"path": "boot-sources", "hang": True})
    assert httpx.get(f"{gateway.url}/api/v1/boot-sources").status_code == 504
    samples = scrape(gateway.url)
    labels = {"endpoint": "boot-sources read", "method": "GET", "status": "UPSTREAM_TIMEOUT"}
    assert value(samples, UPSTREAM, **labels) == 1


# --- cache metrics ----------------------------------------------------------------------------


def test_cache_metrics_count_hits_misses_and_coalesced_loads_per_family(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    httpx.get(f"{gateway.url}/api/v1/boot-sources").raise_for_status()
    # A different answer over the same data: the entity read is a hit (a repeat of the same
    # request could be answered from a stored response without reading the cache at all).
    assert "errors" not in gql(gateway.url, "{ bootSources { id } }").json()
    set_faults(simulator.url, {"path": "boot-resources/1/$", "latency_ms": 500})
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.get(f"{gateway.url}/api/v1/boot-resources/1", timeout=30),
                range(4),
            )
        )
    assert all(a.status_code == 200 for a in answers)
    samples = scrape(gateway.url)
    assert value(samples, CACHE, family="boot-sources", outcome="miss") == 1
    assert value(samples, CACHE, family="boot-sources", outcome="hit") == 1
    assert value(samples, CACHE, family="boot-resource", outcome="miss") == 1
    assert value(samples, CACHE, family="boot-resource", outcome="coalesced") == 3
    assert value(samples, "maas_gateway_cache_entries", family="boot-sources") == 1


def test_cache_metrics_count_stale_answers_and_load_errors(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(cache_ttl_boot_sources=0.05, maas_retries=0)
    httpx.get(f"{gateway.url}/api/v1/boot-sources").raise_for_status()
    set_faults(simulator.url, {"path": "boot-sources", "status": 503})
    wait_for(lambda: httpx.get(f"{gateway.url}/api/v1/boot-sources").headers["x-cache"] == "STALE")
    assert httpx.get(f"{gateway.url}/api/v1/boot-sources/7").status_code == 503
    samples = scrape(gateway.url)
    assert value(samples, CACHE, family="boot-sources", outcome="stale") >= 1
    assert value(samples, "maas_gateway_cache_load_errors_total", family="boot-source") == 1


def test_cache_metrics_count_evictions_and_size(start_gateway: Any) -> None:
    gateway = start_gateway(cache_max_entries=2)
    for resource_id in (1, 2, 3):
        httpx.get(f"{gateway.url}/api/v1/boot-resources/{resource_id}").raise_for_status()
    samples = scrape(gateway.url)
    assert value(samples, "maas_gateway_cache_evictions_total", family="boot-resource") == 1
    assert value(samples, "maas_gateway_cache_entries", family="boot-resource") == 2


def test_response_cache_is_reported_as_its_own_family(gateway: BackgroundServer) -> None:
    for _ in range(3):
        gql(gateway.url, NESTED)
    samples = scrape(gateway.url)
    assert value(samples, CACHE, family="graphql-response", outcome="miss") == 1
    assert value(samples, CACHE, family="graphql-response", outcome="hit") == 2
    assert value(samples, "maas_gateway_cache_entries", family="graphql-response") == 1
    assert value(samples, "maas_gateway_response_cache_bytes") > 1000


def test_open_subscriptions_gauge_follows_subscribers(start_gateway: Any) -> None:
    from websockets.sync.client import connect

    gateway = start_gateway(import_poll_interval=0.2)
    query = "subscription { importProgress { importing } }"
    opened = "maas_gateway_subscriptions_open"
    ws_url = gateway.url.replace("http://", "ws://") + "/graphql"
    with connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        ws.send(orjson.dumps({"type": "connection_init"}).decode())
        assert orjson.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        for sid in ("1", "2"):
            message = {"id": sid, "type": "subscribe", "payload": {"query": query}}
            ws.send(orjson.dumps(message).decode())
        wait_for(lambda: value(scrape(gateway.url), opened) == 2)
        assert value(scrape(gateway.url), "maas_gateway_import_progress_pollers") == 1
        ws.send(orjson.dumps({"id": "1", "type": "complete"}).decode())
        wait_for(lambda: value(scrape(gateway.url), opened) == 1)
    wait_for(lambda: value(scrape(gateway.url), opened) == 0)
    assert value(scrape(gateway.url), "maas_gateway_import_progress_pollers") == 0


def test_metrics_need_no_credentials_and_stay_out_of_the_openapi_document(
    start_gateway: Any,
) -> None:
    gateway = start_gateway(anonymous_scopes="")
    assert httpx.get(f"{gateway.url}/api/v1/boot-sources").status_code == 401
    samples = scrape(gateway.url)
    assert value(samples, "maas_gateway_build_info", version="0.1.0") == 1
    # The gate refuses it before routing: counted, by status, as unrouted.
    assert value(samples, REQUESTS, api="rest", operation="unrouted", status="401") == 1
    paths = httpx.get(f"{gateway.url}/openapi.json").json()["paths"]
    assert not {"/metrics", "/livez", "/readyz"} & set(paths)


# --- the access log line ----------------------------------------------------------------------


def test_access_log_line_describes_each_request(gateway: BackgroundServer) -> None:
    with captured_log() as log:
        gql(gateway.url, NESTED, headers={REQUEST_ID_HEADER: "req-graphql-1"})
        gql(gateway.url, NESTED, headers={REQUEST_ID_HEADER: "req-graphql-2"})
        httpx.get(f"{gateway.url}/api/v1/boot-sources", headers={REQUEST_ID_HEADER: "req-rest"})
    lines = {line["request_id"]: line for line in log.access()}
    first, repeat, rest = lines["req-graphql-1"], lines["req-graphql-2"], lines["req-rest"]
    assert first["message"] == "request"
    assert first["level"] == "info"
    assert {k: first[k] for k in ("api", "operation", "method", "path", "status")} == {
        "api": "graphql",
        "operation": "query bootResources",
        "method": "POST",
        "path": "/graphql",
        "status": 200,
    }
    assert first["principal"] == "anonymous"
    assert first["upstream_calls"] > 1, "the list, then one detail read per resource"
    assert first["cache"] == "MISS"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert (repeat["operation"], repeat["cache"], repeat["upstream_calls"]) == (
        "query bootResources",
        "HIT",
        0,
    )
    assert (rest["api"], rest["operation"], rest["upstream_calls"]) == (
        "rest",
        "list_boot_sources",
        1,
    )
    # Lines logged while a request is answered carry its id too (here the MAAS client's, at
    # debug, one per exchange).
    assert any(
        line["logger"] == "app.maas.client" and line.get("request_id") == "req-graphql-1"
        for line in log.lines
    )


def test_access_log_names_the_principal_by_fingerprint_never_the_key(start_gateway: Any) -> None:
    gateway = start_gateway(auth_mode="passthrough")
    with captured_log() as log:
        response = httpx.get(
            f"{gateway.url}/api/v1/boot-sources", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert response.status_code == 200
    [line] = [line for line in log.access() if line["path"] == "/api/v1/boot-sources"]
    assert line["principal"] == MaasCredentials.from_key(ADMIN_KEY).fingerprint
    for secret in ADMIN_KEY.split(":"):
        assert secret not in log.text


def test_probes_and_scrapes_are_logged_at_debug_only(gateway: BackgroundServer) -> None:
    with captured_log(logging.INFO) as log:
        httpx.get(f"{gateway.url}/livez")
        httpx.get(f"{gateway.url}/metrics")
        httpx.get(f"{gateway.url}/api/v1/boot-sources")
    assert [line["path"] for line in log.access()] == ["/api/v1/boot-sources"]


def test_server_errors_are_logged_as_warnings(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(maas_retries=0)
    set_faults(simulator.url, {"path": "boot-sources", "status": 503})
    with captured_log(logging.INFO) as log:
        assert httpx.get(f"{gateway.url}/api/v1/boot-sources").status_code == 503
    [line] = log.access()
    assert (line["level"], line["status"], line["upstream_calls"]) == ("warning", 503, 1)


def test_json_formatter_writes_one_object_per_line_with_the_exception() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("app.test").makeRecord(
            "app.test", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    line = formatter.format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["message"] == "failed here"
    assert entry["level"] == "error"
    assert "ValueError: boom" in entry["exception"]


def test_json_lines_are_buffered_and_flushed_within_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "log"
    handler = JsonLinesHandler(path.open("wb", buffering=64 * 1024), interval=0.05)
    try:
        logger = logging.getLogger("app.test.buffered")
        logger.addHandler(handler)
        logger.propagate = False
        logger.warning("first")
        assert path.read_bytes() == b"", "no system call per line"
        wait_for(lambda: path.read_bytes().endswith(b"\n"), timeout=2)
        [line] = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        assert (line["message"], line["level"]) == ("first", "warning")
        logger.warning("second")
        handler.flush()
        assert path.read_bytes().count(b"\n") == 2
    finally:
        logging.getLogger("app.test.buffered").removeHandler(handler)
        handler.close()


def test_a_json_lines_handler_may_be_closed_twice(tmp_path: Path) -> None:
    # logging.shutdown closes every handler at exit, including one closed already.
    handler = JsonLinesHandler((tmp_path / "log").open("wb"), interval=0.05)
    handler.close()
    handler.close()
    assert handler.stream.closed


def test_configure_logging_sends_every_logger_to_one_stream_in_the_chosen_format() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        stream = io.StringIO()
        configure_logging("info", "json", stream)
        logging.getLogger("uvicorn.error").warning("Cancel 1 running task(s)")
        logging.getLogger("app.test").info("shown")
        logging.getLogger("httpx").info("HTTP Request: GET ...")
        logging.getLogger("app.test").debug("hidden")
        lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
        assert [(line["logger"], line["message"]) for line in lines] == [
            ("uvicorn.error", "Cancel 1 running task(s)"),
            ("app.test", "shown"),
        ]
        stream = io.StringIO()
        configure_logging("debug", "text", stream)
        logging.getLogger("app.test").debug("shown")
        assert re.search(r" DEBUG app\.test: shown$", stream.getvalue().strip())
        assert isinstance(root.handlers[-1].formatter, TextFormatter)
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(logging.NOTSET)


# --- the request id ---------------------------------------------------------------------------


class RecordingProxy:
    """Forwards every request to the simulator, keeping the request ids it saw."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()

    @property
    def request_ids(self) -> list[str | None]:
        """The ids of the calls made for callers (the readiness probe's carry none)."""
        return [rid for path, rid in self.seen if not path.endswith("/version/")]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k != b"host"]
        with self._lock:
            self.seen.append((scope["path"], dict(headers).get("x-request-id")))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope["query_string"].decode()
        url = f"{self.target}{scope['path']}" + (f"?{query}" if query else "")
        async with httpx.AsyncClient() as client:
            answer = await client.request(scope["method"], url, headers=headers, content=body)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [
                    (k.encode(), v.encode())
                    for k, v in answer.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})


def test_request_id_is_taken_returned_and_sent_upstream(simulator: BackgroundServer) -> None:
    proxy = RecordingProxy(simulator.url)
    with BackgroundServer(proxy) as upstream:
        settings = gateway_settings(upstream.url, ADMIN_KEY, readiness_probe_interval=60)
        with running_gateway(settings) as gateway:
            given = httpx.get(
                f"{gateway.url}/api/v1/boot-sources", headers={REQUEST_ID_HEADER: "caller-id-7"}
            )
            made = httpx.get(f"{gateway.url}/api/v1/boot-resources/1")
            forged = httpx.post(
                f"{gateway.url}/graphql",
                json={"query": "{ bootResource(id: 2) { id } }"},
                headers={REQUEST_ID_HEADER: "bad id\tinjected " + "x" * 200},
            )
    assert given.headers[REQUEST_ID_HEADER] == "caller-id-7"
    made_id = made.headers[REQUEST_ID_HEADER]
    assert re.fullmatch(r"[0-9a-f]{32}", made_id)
    forged_id = forged.headers[REQUEST_ID_HEADER]
    assert re.fullmatch(r"[0-9a-f]{32}", forged_id), "an unsafe id is replaced"
    assert proxy.request_ids == ["caller-id-7", made_id, forged_id]


def test_request_ids_are_unique_per_request(gateway: BackgroundServer) -> None:
    ids = {httpx.get(f"{gateway.url}/livez").headers[REQUEST_ID_HEADER] for _ in range(50)}
    assert len(ids) == 50


def test_websocket_handshake_returns_the_request_id(gateway: BackgroundServer) -> None:
    from websockets.sync.client import connect

    ws_url = gateway.url.replace("http://", "ws://") + "/graphql"
    with connect(
        ws_url,
        subprotocols=["graphql-transport-ws"],
        additional_headers={REQUEST_ID_HEADER: "ws-42"},
        open_timeout=10,
    ) as ws:
        assert ws.response is not None
        assert ws.response.headers[REQUEST_ID_HEADER] == "ws-42"


# --- traces -----------------------------------------------------------------------------------


def test_spans_cover_the_request_each_io_resolver_and_each_upstream_call(
    simulator: BackgroundServer,
) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    with traced_gateway(simulator.url) as (gateway, exporter):
        wait_for(lambda: bool(exporter.get_finished_spans()))  # the readiness probe's call
        exporter.clear()
        response = gql(
            gateway.url,
            "{ bootSources { id selections { os } } }",
            headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        )
        assert response.status_code == 200 and "errors" not in response.json()
        wait_for(lambda: any(s.kind is SpanKind.SERVER for s in exporter.get_finished_spans()))
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "POST /graphql"
    assert _attributes(server)["maas_gateway.operation"] == "query bootSources"
    assert _attributes(server)["http.response.status_code"] == 200
    assert format(server.context.trace_id, "032x") == trace_id, "joins the caller's trace"
    resolvers = {s.name: s for s in spans if s.name.startswith("resolve ")}
    assert {"resolve Query.bootSources", "resolve BootSource.selections"} <= set(resolvers)
    root = resolvers["resolve Query.bootSources"]
    assert root.parent is not None and root.parent.span_id == server.context.span_id
    calls = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert {s.name for s in calls} == {"MAAS boot-sources read", "MAAS boot-source-selections read"}
    [list_call] = [s for s in calls if s.name == "MAAS boot-sources read"]
    assert list_call.parent is not None and list_call.parent.span_id == root.context.span_id
    assert _attributes(list_call)["http.response.status_code"] == 200
    assert list_call.start_time is not None and list_call.end_time is not None
    assert server.start_time is not None and server.end_time is not None
    assert server.start_time <= list_call.start_time <= list_call.end_time <= server.end_time
    assert all(s.context.trace_id == server.context.trace_id for s in spans)


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_tracing_is_off_unless_configured(gateway: BackgroundServer) -> None:
    app: Any = gateway.app  # type: ignore[attr-defined]
    assert app.observability.tracing is None


class OtlpReceiver:
    """Accepts OTLP/HTTP trace exports and keeps their bodies."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.paths.append(scope["path"])
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_spans_are_exported_over_otlp_when_an_endpoint_is_set(
    simulator: BackgroundServer,
) -> None:
    receiver = OtlpReceiver()
    with BackgroundServer(receiver) as collector:
        settings = gateway_settings(
            simulator.url,
            ADMIN_KEY,
            otel_exporter_otlp_endpoint=collector.url,
            otel_service_name="gateway-under-test",
        )
        with running_gateway(settings) as gateway:
            httpx.get(f"{gateway.url}/api/v1/boot-sources").raise_for_status()
        # Stopping the app flushes the batch of spans.
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    exported = b"".join(receiver.bodies)
    assert b"gateway-under-test" in exported
    assert b"GET /api/v1/boot-sources" in exported, "the span is named by the route template"
    assert b"MAAS boot-sources read" in exported


def test_start_up_fails_with_one_line_when_tracing_packages_are_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main as cli

    for name in list(os.environ):
        if name.startswith("MAAS_GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MAAS_GATEWAY_OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    # An entry of None makes the import fail, as if the otel extra were not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    assert cli.main(["serve"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "maas-gateway: MAAS_GATEWAY_OTEL_EXPORTER_OTLP_ENDPOINT is set, but the OpenTelemetry "
        "SDK is not installed: install maas-gateway[otel]"
    ]
    assert captured.out == ""


def test_otel_endpoint_must_be_an_http_url() -> None:
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        Settings(otel_exporter_otlp_endpoint="collector:4318")
    assert Settings(otel_exporter_otlp_endpoint=" ").otel_exporter_otlp_endpoint is None


@pytest.mark.anyio
async def test_upstream_observer_sees_every_exchange_including_retries(
    simulator: BackgroundServer,
) -> None:
    from app.maas.client import MaasClient

    seen: list[tuple[str, str, str]] = []
    set_faults(simulator.url, {"path": "boot-sources/$", "status": 503, "times": 1})
    async with MaasClient(
        f"{simulator.url}/MAAS",
        MaasCredentials.from_key(ADMIN_KEY),
        retry_backoff=0.0,
        observer=lambda op, method, outcome, seconds: seen.append((op, method, outcome)),
    ) as maas:
        await maas.list_boot_sources()
        await asyncio.gather(maas.version(), maas.get_boot_source(1))
    assert seen[:2] == [
        ("boot-sources read", "GET", "503"),
        ("boot-sources read", "GET", "200"),
    ]
    assert sorted(seen[2:]) == [("boot-source read", "GET", "200"), ("version read", "GET", "200")]
