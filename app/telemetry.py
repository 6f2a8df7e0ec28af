"""Per-request telemetry, outermost in the app: the request id (taken or made, returned and sent
upstream), in-flight counts, request metrics, the access log line and, if on, the request span."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.callers import IDENTITY_KEY
from app.config import Settings
from app.health import UpstreamHealth
from app.logs import ACCESS_LOGGER
from app.maas.client import MaasClient, UpstreamObserver
from app.metrics import GatewayMetrics
from app.observability import RequestRecord, current_request, request_id
from app.service import BootService, cache_policies
from app.tracing import Tracing, build_tracing, incoming_context, record_upstream_span

_HEADER = b"x-request-id"
# A caller's id is kept when it is a plain token; anything else (too long, odd bytes that
# could forge log lines or headers upstream) is replaced by one of ours.
_VALID_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
NO_OPERATION = "none"
"""The operation of a GraphQL request that never reached execution (the GraphiQL page, an
unreadable body)."""
UNROUTED = "unrouted"
"""The operation of a request answered without a route: an unknown path, or one the gate
refused before routing (the status tells which)."""
REST_PREFIX = "/api/v1"


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == _HEADER:
            if _VALID_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return os.urandom(16).hex()


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


class Telemetry:
    """ASGI middleware around the whole app; costs a few microseconds a request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: GatewayMetrics,
        health: UpstreamHealth,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.health = health
        self.tracing = tracing
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.tracing is None:
                await self._http(scope, receive, send, None)
            else:
                await self._traced(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send, span: Span | None) -> None:
        api = _api(scope["path"])
        rid = _request_id(scope["headers"])
        record = RequestRecord(rid)
        record_token = current_request.set(record)
        id_token = request_id.set(rid)
        header = (_HEADER, rid.encode("ascii"))
        status = 500
        cache: bytes | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, cache
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                for name, value in headers:
                    if name == b"x-cache":
                        cache = value
                message["headers"] = [*headers, header]
            await send(message)

        in_flight = self.metrics.in_flight
        in_flight[api] += 1
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            in_flight[api] -= 1
            request_id.reset(id_token)
            current_request.reset(record_token)
            if record.cache is None and cache is not None:
                record.cache = cache.decode("latin-1")
            self._finish(scope, api, record, status, seconds, span)

    def _finish(
        self,
        scope: Scope,
        api: str,
        record: RequestRecord,
        status: int,
        seconds: float,
        span: Span | None,
    ) -> None:
        operation = record.operation
        route = scope.get("route")
        if operation is None:
            if api == "graphql":
                operation = NO_OPERATION
            else:
                operation = route.name if route is not None else UNROUTED
        self.metrics.observe_request(api, operation, status, seconds)
        if record.errors:
            self.metrics.observe_graphql_errors(operation, record.errors)
        identity = scope.get(IDENTITY_KEY)
        if identity is not None:
            record.principal = identity.caller.principal
        if span is not None:
            # Named by the route's template, never the raw path: span names must stay few.
            template = _template(api, route)
            span.update_name(f"{scope['method']} {template}" if template else scope["method"])
            if template:
                span.set_attribute("http.route", template)
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("maas_gateway.operation", operation)
            span.set_attribute("maas_gateway.request_id", record.request_id)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        # Probes, scrapes and static files would drown the useful lines at info.
        level = logging.INFO if api != "internal" else logging.DEBUG
        if status >= 500:
            level = logging.WARNING
        log = self.log
        if log.isEnabledFor(level):
            fields = {
                "request_id": record.request_id,
                "principal": record.principal,
                "api": api,
                "operation": operation,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "upstream_calls": record.upstream_calls,
                "cache": record.cache,
            }
            if record.errors:
                fields["errors"] = list(record.errors)
            # makeRecord + handle: the same record `log.info` makes, without its stack walk.
            entry = log.makeRecord(log.name, level, __file__, 0, "request", (), None)
            entry.fields = fields
            log.handle(entry)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.tracing is not None
        with self.tracing.tracer.start_as_current_span(
            scope["method"],
            context=incoming_context(scope["headers"]),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        ) as span:
            await self._http(scope, receive, send, span)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = _request_id(scope["headers"])
        record = RequestRecord(rid)
        record_token = current_request.set(record)
        id_token = request_id.set(rid)
        header = (_HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "websocket.accept":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(id_token)
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

    def middleware(self, app: ASGIApp) -> Telemetry:
        return Telemetry(app, metrics=self.metrics, health=self.health, tracing=self.tracing)

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
