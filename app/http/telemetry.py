"""Per-request telemetry, outermost in the app: the request id (taken or made, returned and sent
upstream), in-flight counts, request metrics, the access log line and, if on, the request span."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
    set_span_in_context,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.identity import IDENTITY_KEY
from app.core.settings import Settings
from app.http.exchange import Exchange
from app.maas.client import MaasClient, UpstreamObserver
from app.observability.context import RequestRecord, current_request
from app.observability.health import UpstreamHealth
from app.observability.logs import ACCESS_LOGGER
from app.observability.metrics import GatewayMetrics
from app.observability.tracing import Tracing, build_tracing, incoming_context, record_upstream_span
from app.service import BootService, cache_policies

_HEADER = b"x-request-id"
# A caller's id is kept when it is a plain token; anything else (too long, odd bytes that
# could forge log lines or headers upstream) is replaced by one of ours.
_VALID_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
NO_OPERATION = "none"
"""The operation of a GraphQL request that never reached execution (the GraphiQL page, an
unreadable body)."""
UNROUTED = "unrouted"
STATIC = "static"
"""The operation of a request answered without a route: an unknown path, or one admission
refused before routing (the status tells which)."""
REST_PREFIX = "/api/v1"


class _RequestIds:
    """Takes a caller's id when it is safe, else makes one: 32 hex digits, a random prefix per
    process and a counter, unique without a system call per request."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._next = itertools.count().__next__

    def __call__(self, headers: list[tuple[bytes, bytes]]) -> str:
        for name, value in headers:
            if name == _HEADER:
                return self.accept(value)
        return self.accept(None)

    def accept(self, value: bytes | None) -> str:
        """The id for a request whose X-Request-ID header is `value` (None: it sent none)."""
        if value is not None and _VALID_ID.fullmatch(value):
            return value.decode("ascii")
        return self.new()

    def new(self) -> str:
        return self._prefix + hex(self._next())[2:].zfill(16)


def _api(path: str) -> str:
    if path == "/graphql":
        return "graphql"
    if path.startswith("/api/"):
        return "rest"
    return "internal"


def _template(api: str, route: Any) -> str | None:
    if api == "graphql":
        return "/graphql"
    path: str | None = getattr(route, "path", None)
    # FastAPI keeps an included router's routes without the outer prefix.
    if path is not None and api == "rest" and not path.startswith(REST_PREFIX):
        path = REST_PREFIX + path
    return path


def _unlabelled(scope: Scope, api: str) -> str:
    """The operation of a request nothing labelled on the way."""
    if api == "graphql":
        return NO_OPERATION
    route = scope.get("route")
    if route is not None:
        name: str = route.name
        return name
    # Static files (the browser pages' assets) are mounted, not routed: named apart from strays.
    return STATIC if scope["path"].startswith("/static/") else UNROUTED


def _annotate(
    span: Span, scope: Scope, api: str, operation: str, record: RequestRecord, status: int
) -> None:
    # Named by the route's template, never the raw path: span names must stay few.
    template = _template(api, scope.get("route"))
    span.update_name(f"{scope['method']} {template}" if template else scope["method"])
    if template:
        span.set_attribute("http.route", template)
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("maas_gateway.operation", operation)
    span.set_attribute("maas_gateway.request_id", record.request_id)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


class Telemetry:
    """The pipeline's first and last step for every request: the request id (taken or made,
    returned and sent upstream), in-flight counts, request metrics, the access log line and, if
    tracing is on, the request span."""

    def __init__(
        self,
        *,
        metrics: GatewayMetrics,
        health: UpstreamHealth,
        tracing: Tracing | None = None,
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.tracing = tracing
        self.log = logging.getLogger(ACCESS_LOGGER)
        self.request_id = _RequestIds()

    def begin(self, scope: Scope, send: Send) -> Exchange:
        """Start following a request; its answer goes through the exchange, which returns the
        request's id (the caller's X-Request-ID if it is safe, else one of ours)."""
        path: str = scope["path"]
        exchange = Exchange(scope, send, "graphql" if path == "/graphql" else _api(path))
        given = exchange.headers.get(_HEADER)
        ids = self.request_id
        rid = exchange.request_id = ids.new() if given is None else ids.accept(given)
        exchange.id_header = (_HEADER, rid.encode())
        if self.tracing is not None:
            exchange.span, exchange.span_token = self._start_span(scope)
        self.metrics.in_flight[exchange.api] += 1
        return exchange

    def end(self, scope: Scope, exchange: Exchange, error: BaseException | None = None) -> None:
        """Account for the request `begin` started: metrics, the span, the access line."""
        seconds = time.perf_counter() - exchange.started
        api, record, status = exchange.api, exchange, exchange.status
        self.metrics.in_flight[api] -= 1
        operation = record.operation or _unlabelled(scope, api)
        self.metrics.observe_request(api, operation, status, seconds)
        if record.uploaded_bytes:
            uploads = self.metrics.upload_bytes
            uploads[api] = uploads.get(api, 0) + record.uploaded_bytes
        if record.errors:
            self.metrics.observe_graphql_errors(operation, record.errors)
        span = exchange.span
        if span is not None:
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR))
            _annotate(span, scope, api, operation, record, status)
        # Probes, scrapes and static files would drown the useful lines at info.
        level = logging.INFO if api != "internal" else logging.DEBUG
        if status >= 500:
            level = logging.WARNING
        if self.log.isEnabledFor(level):
            self._access_line(
                level, scope, api, operation, record, status, exchange.cache_header, seconds
            )
        if span is not None and exchange.span_token is not None:
            otel_context.detach(exchange.span_token)
            span.end()

    def _start_span(self, scope: Scope) -> tuple[Span, Token[Context]]:
        assert self.tracing is not None
        span = self.tracing.tracer.start_span(
            scope["method"],
            context=incoming_context(scope["headers"]),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        )
        return span, otel_context.attach(set_span_in_context(span))

    def _access_line(
        self,
        level: int,
        scope: Scope,
        api: str,
        operation: str,
        record: RequestRecord,
        status: int,
        cache_header: bytes | None,
        seconds: float,
    ) -> None:
        identity = scope.get(IDENTITY_KEY)
        cache = record.cache
        if cache is None and cache_header is not None:
            cache = cache_header.decode("latin-1")
        fields = {
            "request_id": record.request_id,
            "principal": identity.caller.principal if identity is not None else None,
            "api": api,
            "operation": operation,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "upstream_calls": record.upstream_calls,
            "cache": cache,
        }
        if record.errors:
            fields["errors"] = list(record.errors)
        # The record `log.info` would make, without its stack walk (this is the hot path).
        entry = logging.LogRecord(self.log.name, level, "", 0, "request", (), None)
        entry.fields = fields
        self.log.handle(entry)

    async def websocket(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket's request id and, when it closes, its log line."""
        rid = self.request_id(scope["headers"])
        record = RequestRecord(rid)
        record_token = current_request.set(record)
        header = (_HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "websocket.accept":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        started = time.perf_counter()
        try:
            await app(scope, receive, send_with_id)
        finally:
            current_request.reset(record_token)
            identity = scope.get(IDENTITY_KEY)
            fields: dict[str, Any] = {
                "request_id": rid,
                "principal": identity.caller.principal if identity is not None else None,
                "api": _api(scope["path"]),
                "operation": record.operation or "websocket",
                "path": scope["path"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            self.log.info("websocket closed", extra={"fields": fields})

    @staticmethod
    def observer(
        gateway_metrics: GatewayMetrics, health: UpstreamHealth, tracing: Tracing | None
    ) -> UpstreamObserver:
        """What the MAAS client reports every exchange to: metrics, readiness, the request's
        record and, if on, a client span."""
        metrics = gateway_metrics.observe_upstream
        observe_health = health.observe
        tracer = tracing.tracer if tracing is not None else None

        def observe(endpoint: str, method: str, outcome: str, seconds: float) -> None:
            metrics(endpoint, method, outcome, seconds)
            observe_health(outcome)
            record = current_request.get()
            if record is not None:
                record.upstream_calls += 1
            if tracer is not None:
                record_upstream_span(tracer, endpoint, method, outcome, seconds)

        return observe


class Observability:
    """Health, metrics and traces of one app, built by create_app; nothing at import time."""

    def __init__(
        self,
        settings: Settings,
        service: BootService,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.service = service
        self.tracing = build_tracing(settings, tracer_provider)
        servable = max(p.ttl + p.stale_ttl for p in cache_policies(settings).values())
        self.health = UpstreamHealth(
            window=settings.readiness_window,
            servable=servable,
            probe_interval=settings.readiness_probe_interval,
        )
        self.metrics = GatewayMetrics(service, self.health)
        # Subscribers leave within milliseconds; the bound only matters when one is stuck.
        self.drain_timeout = min(settings.shutdown_timeout, 5.0)

    @property
    def tracer(self) -> Tracer | None:
        return self.tracing.tracer if self.tracing is not None else None

    def telemetry(self) -> Telemetry:
        return Telemetry(metrics=self.metrics, health=self.health, tracing=self.tracing)

    def upstream_observer(self) -> UpstreamObserver:
        return Telemetry.observer(self.metrics, self.health, self.tracing)

    @contextlib.asynccontextmanager
    async def running(self, maas: MaasClient) -> AsyncIterator[None]:
        """The readiness probe while the app runs; on the way out, subscriptions end and
        buffered spans are flushed."""
        probe = asyncio.create_task(self.health.probe(maas), name="readiness-probe")
        try:
            yield
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.service.progress.close()
            if self.tracing is not None:
                self.tracing.shutdown()

    async def drain(self) -> None:
        """A graceful shutdown's first step, once the server stops accepting: /readyz turns
        503, and open subscriptions complete cleanly before their sockets close."""
        self.health.draining = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_timeout):
                await self.service.progress.close()
