"""Prometheus metrics in one registry per app: requests and upstream calls are counted as they
happen; cache, subscription and readiness figures are read from their owners when scraped."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from app import __version__
from app.health import UpstreamHealth
from app.service import BootService

__all__ = ["APIS", "CONTENT_TYPE", "OTHER", "GatewayMetrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The text format every Prometheus reads (the names here need none of 1.0.0's escaping)."""

APIS = ("graphql", "rest", "internal")
"""The `api` label: the GraphQL endpoint, the REST API, and the rest (health, metrics, static)."""

OTHER = "other"
MAX_LABEL_VALUES = 100
"""Distinct operations (and error codes) per metric; later ones are counted as `other`, so no
caller can grow the series without bound."""

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_CACHE_OUTCOMES = (
    ("hits", "hit"),
    ("misses", "miss"),
    ("stale", "stale"),
    ("coalesced", "coalesced"),
)
RESPONSE_FAMILY = "graphql-response"


class _Bounded:
    """Passes label values through until `limit` distinct ones were seen, then `other`."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


class GatewayMetrics:
    """Every series the gateway exposes on /metrics; built per app, nothing at import time."""

    def __init__(self, service: BootService, health: UpstreamHealth) -> None:
        # `_created` samples would double the series Prometheus stores, and say little here.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        registry = self.registry = CollectorRegistry()
        self._requests = Counter(
            "maas_gateway_http_requests",
            "HTTP requests answered, by API, operation (GraphQL operation type and root fields, "
            "or REST route name) and status.",
            ("api", "operation", "status"),
            registry=registry,
        )
        self._request_seconds = Histogram(
            "maas_gateway_http_request_duration_seconds",
            "Time to answer an HTTP request, by API and operation.",
            ("api", "operation"),
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._graphql_errors = Counter(
            "maas_gateway_graphql_errors",
            "Errors in GraphQL responses, by operation and error code.",
            ("operation", "code"),
            registry=registry,
        )
        self._upstream = Counter(
            "maas_gateway_upstream_requests",
            "Exchanges with MAAS (retries included), by endpoint, method and outcome (HTTP "
            "status, or the gateway error code when no response came).",
            ("endpoint", "method", "status"),
            registry=registry,
        )
        self._upstream_seconds = Histogram(
            "maas_gateway_upstream_request_duration_seconds",
            "Time of one exchange with MAAS, by endpoint and method.",
            ("endpoint", "method"),
            buckets=UPSTREAM_BUCKETS,
            registry=registry,
        )
        self.in_flight = dict.fromkeys(APIS, 0)
        """HTTP requests being answered now, by API; the request middleware keeps it."""
        registry.register(_ScrapeTimeCollector(self.in_flight, service, health))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        # Labelled children, found again with one dict lookup per request instead of labels().
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._upstream_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._operations = {api: _Bounded() for api in APIS}
        self._error_codes = _Bounded()

    def observe_request(self, api: str, operation: str, status: int, seconds: float) -> None:
        key = (api, operation, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = self._request_series(api, operation, status)
        children[0].inc()
        children[1].observe(seconds)

    def _request_series(self, api: str, operation: str, status: int) -> tuple[Counter, Histogram]:
        label = self._operations[api](operation)
        return (
            self._requests.labels(api, label, str(status)),
            self._request_seconds.labels(api, label),
        )

    def observe_graphql_errors(self, operation: str, codes: Iterable[str]) -> None:
        label = self._operations["graphql"](operation)
        for code in codes:
            self._graphql_errors.labels(label, self._error_codes(code)).inc()

    def observe_upstream(self, endpoint: str, method: str, outcome: str, seconds: float) -> None:
        key = (endpoint, method, outcome)
        children = self._upstream_children.get(key)
        if children is None:
            children = self._upstream_children[key] = (
                self._upstream.labels(endpoint, method, outcome),
                self._upstream_seconds.labels(endpoint, method),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)


class _ScrapeTimeCollector(Collector):
    """Figures their owners already keep, read at scrape time so that serving costs nothing."""

    def __init__(
        self, in_flight: dict[str, int], service: BootService, health: UpstreamHealth
    ) -> None:
        self._in_flight = in_flight
        self._service = service
        self._health = health

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._caches()
        yield from self._readiness()
        info = GaugeMetricFamily(
            "maas_gateway_build_info", "The gateway's version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info

    def _requests(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            "maas_gateway_http_requests_in_flight",
            "HTTP requests being answered now, by API.",
            labels=["api"],
        )
        for api, count in self._in_flight.items():
            in_flight.add_metric([api], count)
        yield in_flight
        progress = self._service.progress
        yield GaugeMetricFamily(
            "maas_gateway_subscriptions_open",
            "GraphQL subscriptions open now.",
            value=progress.subscribers,
        )
        yield GaugeMetricFamily(
            "maas_gateway_import_progress_pollers",
            "Import-progress pollers running (one per principal with subscribers).",
            value=progress.pollers,
        )

    def _caches(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "maas_gateway_cache_requests",
            "Cache lookups by family and outcome: hit, miss (loaded from MAAS), stale (served "
            "past its TTL because MAAS failed) or coalesced (joined a load already in flight).",
            labels=["family", "outcome"],
        )
        errors = CounterMetricFamily(
            "maas_gateway_cache_load_errors",
            "Cache loads that failed with no stale entry to fall back on, by family.",
            labels=["family"],
        )
        evictions = CounterMetricFamily(
            "maas_gateway_cache_evictions",
            "Entries evicted to stay within the cache's bounds, by family.",
            labels=["family"],
        )
        entries = GaugeMetricFamily(
            "maas_gateway_cache_entries", "Entries held now, by family.", labels=["family"]
        )
        for family, stats in self._service.cache.stats().items():
            for key, outcome in _CACHE_OUTCOMES:
                lookups.add_metric([family, outcome], stats[key])
            errors.add_metric([family], stats["errors"])
            evictions.add_metric([family], stats["evictions"])
            entries.add_metric([family], stats["size"])
        responses = self._service.responses
        if responses is not None:
            stats = responses.stats()
            lookups.add_metric([RESPONSE_FAMILY, "hit"], stats["hits"])
            lookups.add_metric([RESPONSE_FAMILY, "miss"], stats["misses"])
            evictions.add_metric([RESPONSE_FAMILY], stats["evictions"])
            entries.add_metric([RESPONSE_FAMILY], stats["size"])
        yield from (lookups, errors, evictions, entries)
        if responses is not None:
            yield GaugeMetricFamily(
                "maas_gateway_response_cache_bytes",
                "Bytes of stored GraphQL responses.",
                value=stats["bytes"],
            )

    def _readiness(self) -> Iterator[Metric]:
        health = self._health
        readiness = health.readiness(len(self._service.cache))
        yield GaugeMetricFamily(
            "maas_gateway_ready", "1 while /readyz answers 200.", value=int(readiness.ready)
        )
        age = health.success_age()
        if age is not None:
            yield GaugeMetricFamily(
                "maas_gateway_upstream_last_success_age_seconds",
                "Seconds since MAAS last answered a call.",
                value=age,
            )
