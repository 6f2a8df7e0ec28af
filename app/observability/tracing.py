"""Optional OpenTelemetry tracing: off unless an OTLP endpoint is set; the SDK and exporter come
with the `otel` extra. Spans: one per request, per I/O resolver, per MAAS call."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app import __version__
from app.core.settings import ENV_PREFIX, Settings

OTLP_TRACES_PATH = "/v1/traces"


class TracingUnavailable(RuntimeError):
    """Tracing is configured but its packages are not installed."""


@dataclass(frozen=True, slots=True)
class Tracing:
    tracer: Tracer
    shutdown: Callable[[], None]
    """Flushes and stops what this app built (nothing for a provider passed in)."""


def build_tracing(settings: Settings, provider: TracerProvider | None = None) -> Tracing | None:
    """The app's tracer: from `provider` when given (tests, embedding), else an OTLP/HTTP
    exporter to `settings.otel_exporter_otlp_endpoint`, else None (tracing off)."""
    if provider is not None:
        return Tracing(provider.get_tracer("maas-gateway", __version__), lambda: None)
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint is None:
        return None
    check_tracing(settings)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if not endpoint.endswith(OTLP_TRACES_PATH):
        endpoint = endpoint.rstrip("/") + OTLP_TRACES_PATH
    resource = Resource.create(
        {"service.name": settings.otel_service_name, "service.version": __version__}
    )
    sdk = SdkTracerProvider(resource=resource)
    sdk.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return Tracing(sdk.get_tracer("maas-gateway", __version__), sdk.shutdown)


def check_tracing(settings: Settings) -> None:
    """Raise TracingUnavailable when tracing is configured but its packages are missing."""
    if settings.otel_exporter_otlp_endpoint is None:
        return
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise TracingUnavailable(
            f"{ENV_PREFIX}OTEL_EXPORTER_OTLP_ENDPOINT is set, but the OpenTelemetry SDK is not "
            "installed: install maas-gateway[otel]"
        ) from None


_propagator = TraceContextTextMapPropagator()


def incoming_context(headers: list[tuple[bytes, bytes]]) -> Context:
    """The caller's trace (W3C traceparent/tracestate), so the request span joins it."""
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in (b"traceparent", b"tracestate")
    }
    return _propagator.extract(carrier)


def record_upstream_span(
    tracer: Tracer, endpoint: str, method: str, outcome: str, seconds: float
) -> None:
    """A client span for one MAAS exchange, drawn after the fact from its measured duration
    (the client only reports a finished exchange); its parent is the current span."""
    end = time.time_ns()
    attributes: Mapping[str, str | int] = {
        "http.request.method": method,
        "maas.endpoint": endpoint,
    }
    span = tracer.start_span(
        f"MAAS {endpoint}",
        kind=SpanKind.CLIENT,
        start_time=end - int(seconds * 1e9),
        attributes=attributes,
    )
    if outcome.isdigit():
        status = int(outcome)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    else:
        span.set_attribute("error.type", outcome)
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=end)
