"""Prometheus metrics in one registry per app: requests and upstream calls are counted as they
happen; cache, subscription and readiness figures are read from their owners when scraped."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from app import __version__
from app.observability.health import UpstreamHealth

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
# An image upload runs for minutes: its own buckets, up to an hour.
UPLOAD_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
UPLOAD_OPERATIONS = frozenset({"upload_boot_resource", "mutation uploadBootResource"})
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_CACHE_OUTCOMES = (
    ("hits", "hit"),
    ("misses", "miss"),
    ("stale", "stale"),
    ("coalesced", "coalesced"),
)
RESPONSE_FAMILY = "graphql-response"

if TYPE_CHECKING:
    from app.maas.breaker import BreakerState
    from app.service import BootService


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


class _Series:
    """One label set's count, sum and histogram buckets, kept as plain numbers: counting a
    request is a few additions, and the exposition is built only when Prometheus scrapes."""

    __slots__ = ("bounds", "buckets", "count", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.buckets[bisect_left(self.bounds, seconds)] += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus's buckets: each counts every observation up to its bound."""
        bounds = (*map(floatToGoString, self.bounds), "+Inf")
        running = 0
        points: list[tuple[str, float]] = []
        for bound, count in zip(bounds, self.buckets, strict=True):
            running += count
            points.append((bound, running))
        return points


class _Cell:
    """What one request's labels point at: its counter and its duration series."""

    __slots__ = ("count", "series")

    def __init__(self, series: _Series) -> None:
        self.count = 0
        self.series = series


class GatewayMetrics:
    """Every series the gateway exposes on /metrics; built per app, nothing at import time."""

    def __init__(self, service: BootService, health: UpstreamHealth) -> None:
        self.registry = CollectorRegistry()
        self.in_flight = dict.fromkeys(APIS, 0)
        """HTTP requests being answered now, by API; the request middleware keeps it."""
        self.requests: dict[tuple[str, str, int], _Cell] = {}
        self.request_seconds: dict[tuple[str, str], _Series] = {}
        self.upload_bytes: dict[str, int] = {}
        self.upstream: dict[tuple[str, str, str], _Cell] = {}
        self.upstream_seconds: dict[tuple[str, str], _Series] = {}
        self.graphql_errors: dict[tuple[str, str], int] = {}
        self._operations = {api: _Bounded() for api in APIS}
        self._error_codes = _Bounded()
        self.breakers: Callable[[], Mapping[str, BreakerState]] | None = None
        """The MAAS client's circuit breakers, read at scrape time; set once the client exists."""
        self.executions: Callable[[], tuple[Mapping[str, int], int]] | None = None
        """GraphQL executions by executor and the compiled plans kept, read at scrape time."""
        self.registry.register(_ScrapeTimeCollector(self, service, health))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe_request(self, api: str, operation: str, status: int, seconds: float) -> None:
        cell = self.requests.get((api, operation, status))
        if cell is None:
            cell = self._request_cell(api, operation, status)
        cell.count += 1
        # _Series.observe, inlined: this runs for every request, cached answers included.
        series = cell.series
        series.count += 1
        series.total += seconds
        series.buckets[bisect_left(series.bounds, seconds)] += 1

    def _request_cell(self, api: str, operation: str, status: int) -> _Cell:
        label = self._operations[api](operation)
        series = self.request_seconds.get((api, label))
        if series is None:
            bounds = UPLOAD_BUCKETS if label in UPLOAD_OPERATIONS else REQUEST_BUCKETS
            series = self.request_seconds[(api, label)] = _Series(bounds)
        cell = self.requests.get((api, label, status))
        if cell is None:
            cell = self.requests[(api, label, status)] = _Cell(series)
        return cell

    def observe_graphql_errors(self, operation: str, codes: Iterable[str]) -> None:
        label = self._operations["graphql"](operation)
        for code in codes:
            key = (label, self._error_codes(code))
            self.graphql_errors[key] = self.graphql_errors.get(key, 0) + 1

    def observe_upstream(self, endpoint: str, method: str, outcome: str, seconds: float) -> None:
        cell = self.upstream.get((endpoint, method, outcome))
        if cell is None:
            series = self.upstream_seconds.get((endpoint, method))
            if series is None:
                series = self.upstream_seconds[(endpoint, method)] = _Series(UPSTREAM_BUCKETS)
            cell = self.upstream[(endpoint, method, outcome)] = _Cell(series)
        cell.count += 1
        cell.series.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)


class _ScrapeTimeCollector(Collector):
    """Builds every gateway series when Prometheus scrapes, from the plain numbers the request
    path keeps and from what the cache, the subscription hub and readiness know already."""

    def __init__(
        self, metrics: GatewayMetrics, service: BootService, health: UpstreamHealth
    ) -> None:
        self._metrics = metrics
        self._service = service
        self._health = health

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._upstream()
        yield from self._caches()
        yield from self._redis()
        yield from self._readiness()
        info = GaugeMetricFamily(
            "maas_gateway_build_info", "The gateway's version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info

    def _requests(self) -> Iterator[Metric]:
        metrics = self._metrics
        requests = CounterMetricFamily(
            "maas_gateway_http_requests",
            "HTTP requests answered, by API, operation (GraphQL operation type and root fields, "
            "or REST route name) and status.",
            labels=["api", "operation", "status"],
        )
        for (api, operation, status), cell in metrics.requests.items():
            requests.add_metric([api, operation, str(status)], cell.count)
        yield requests
        yield _histogram(
            "maas_gateway_http_request_duration_seconds",
            "Time to answer an HTTP request, by API and operation.",
            ["api", "operation"],
            metrics.request_seconds,
        )
        uploaded = CounterMetricFamily(
            "maas_gateway_upload_bytes",
            "Image bytes uploaded to MAAS through the gateway, by API.",
            labels=["api"],
        )
        for api, count in metrics.upload_bytes.items():
            uploaded.add_metric([api], count)
        yield uploaded
        in_flight = GaugeMetricFamily(
            "maas_gateway_http_requests_in_flight",
            "HTTP requests being answered now, by API.",
            labels=["api"],
        )
        for api, count in metrics.in_flight.items():
            in_flight.add_metric([api], count)
        yield in_flight
        errors = CounterMetricFamily(
            "maas_gateway_graphql_errors",
            "Errors in GraphQL responses, by operation and error code.",
            labels=["operation", "code"],
        )
        for (operation, code), count in metrics.graphql_errors.items():
            errors.add_metric([operation, code], count)
        yield errors
        yield from self._executions()
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

    def _executions(self) -> Iterator[Metric]:
        if self._metrics.executions is None:
            return
        counts, plans = self._metrics.executions()
        executions = CounterMetricFamily(
            "maas_gateway_graphql_executions",
            "GraphQL operations executed, by executor: compiled (a cached plan) or fallback "
            "(graphql-core: introspection, mutations, @defer and @stream, other directives).",
            labels=["executor"],
        )
        for executor, count in counts.items():
            executions.add_metric([executor], count)
        yield executions
        yield GaugeMetricFamily(
            "maas_gateway_graphql_plans", "Compiled GraphQL execution plans kept.", value=plans
        )

    def _upstream(self) -> Iterator[Metric]:
        metrics = self._metrics
        calls = CounterMetricFamily(
            "maas_gateway_upstream_requests",
            "Exchanges with MAAS (retries included), by endpoint, method and outcome (HTTP "
            "status, or the gateway error code when no response came).",
            labels=["endpoint", "method", "status"],
        )
        for (endpoint, method, outcome), cell in metrics.upstream.items():
            calls.add_metric([endpoint, method, outcome], cell.count)
        yield calls
        yield _histogram(
            "maas_gateway_upstream_request_duration_seconds",
            "Time of one exchange with MAAS, by endpoint and method.",
            ["endpoint", "method"],
            metrics.upstream_seconds,
        )
        if metrics.breakers is None:
            return
        states = GaugeMetricFamily(
            "maas_gateway_upstream_breaker_state",
            "1 for each MAAS endpoint family's circuit breaker state now (closed: calls go "
            "through; open: they fail fast; half_open: one call probes MAAS).",
            labels=["family", "state"],
        )
        opens = CounterMetricFamily(
            "maas_gateway_upstream_breaker_opens",
            "Times each endpoint family's circuit breaker opened.",
            labels=["family"],
        )
        for family, breaker in metrics.breakers().items():
            for state in type(breaker.state):  # every state of the breaker's own enum
                states.add_metric([family, state.value], int(breaker.state is state))
            opens.add_metric([family], breaker.opens)
        yield states
        yield opens

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

    def _redis(self) -> Iterator[Metric]:
        redis = self._service.redis
        if redis is None:
            return
        yield GaugeMetricFamily(
            "maas_gateway_redis_connected",
            "1 while this replica hears the other replicas' invalidations through Redis.",
            value=int(redis.connected),
        )
        yield GaugeMetricFamily(
            "maas_gateway_cache_degraded",
            "1 while Redis is unreachable and cache TTLs are capped at redis_degraded_ttl.",
            value=int(redis.degraded),
        )
        yield CounterMetricFamily(
            "maas_gateway_redis_reconnects",
            "Subscriptions to the invalidation bus made (the first one included).",
            value=redis.reconnects,
        )
        yield CounterMetricFamily(
            "maas_gateway_redis_errors",
            "Redis calls that failed or timed out (each answered as if Redis were off).",
            value=redis.errors,
        )
        bus = CounterMetricFamily(
            "maas_gateway_invalidations",
            "Invalidation messages, by direction: published by this replica's writes or "
            "applied from another replica's.",
            labels=["direction"],
        )
        bus.add_metric(["published"], redis.published)
        bus.add_metric(["applied"], redis.applied)
        yield bus
        shared = CounterMetricFamily(
            "maas_gateway_shared_cache_requests",
            "Lookups in the shared (Redis) cache after a local miss, by outcome: hit, miss or "
            "error.",
            labels=["outcome"],
        )
        shared.add_metric(["hit"], redis.l2_hits)
        shared.add_metric(["miss"], redis.l2_misses)
        shared.add_metric(["error"], redis.l2_errors)
        yield shared

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


def _histogram(
    name: str, documentation: str, labels: list[str], series: dict[tuple[str, str], _Series]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, one in series.items():
        family.add_metric(list(values), one.cumulative(), sum_value=one.total)
    return family
