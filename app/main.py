"""Application factory: `create_app(settings)` wires client, cache, service and both faces."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI
from opentelemetry.trace import TracerProvider
from starlette.routing import Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__
from app.cache import EntityCache
from app.callers import CallerResolver
from app.config import Settings
from app.front_door import FrontDoor
from app.gate import RequestGate, with_cors
from app.graphql.edge import ResponseCacheEdge
from app.graphql.router import GatewayGraphQL
from app.graphql.schema import build_schema
from app.maas.auth import MaasCredentials
from app.maas.client import MaasClient
from app.rest import install_error_handlers
from app.rest import router as rest_router
from app.rest.edge import StoredReads
from app.rest.health import router as health_router
from app.service import BootService, cache_policies
from app.telemetry import Observability

STATIC_DIR = Path(__file__).parent / "static"


class GatewayApp(FastAPI):
    """FastAPI behind the gateway's own entry (front door, telemetry, gate, stored-answer edges),
    so a stored answer skips FastAPI's per-request work too (DESIGN.md, "Performance model")."""

    entry: ASGIApp | None = None
    observability: Observability | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.entry is not None:
            await self.entry(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def drain(self) -> None:
        """Called by the server once it stops accepting connections (app.serving)."""
        if self.observability is not None:
            await self.observability.drain()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    maas_transport: httpx.AsyncBaseTransport | None = None,
    tracer_provider: TracerProvider | None = None,
) -> GatewayApp:
    """Build the whole gateway; nothing is created at import time (DESIGN.md, "Layers")."""
    settings = settings or Settings()
    cache = EntityCache(cache_policies(settings), maxsize=settings.cache_max_entries)
    service = BootService(cache, settings)
    observability = Observability(settings, service, tracer_provider)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.maas_url is None:
            raise RuntimeError("MAAS_GATEWAY_MAAS_URL is required")
        if settings.maas_api_key is None and settings.auth_mode == "service":
            raise RuntimeError("MAAS_GATEWAY_MAAS_API_KEY is required in service mode")
        # In passthrough mode the configured key (if any) signs only the gateway's own calls.
        credentials = (
            MaasCredentials.from_key(settings.maas_api_key.get_secret_value())
            if settings.maas_api_key is not None
            else None
        )
        async with (
            MaasClient.from_settings(
                settings,
                credentials,
                transport=maas_transport,
                observer=observability.upstream_observer(),
            ) as maas,
            observability.running(maas),
        ):
            resolver.start(maas)
            app.state.maas = maas
            observability.metrics.breakers = maas.breaker_states
            if settings.redis_url is not None:
                from app.redis_backend import RedisBackend

                # Started, not awaited: Redis down at start only shortens TTLs (RedisBackend).
                service.redis = RedisBackend(settings, cache)
                service.redis.start()
            try:
                yield
            finally:
                resolver.stop()
                if service.redis is not None:
                    await service.redis.close()
                    service.redis = None

    app = GatewayApp(
        title="maas-gateway",
        version=__version__,
        description="GraphQL and REST over MAAS's boot-image API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.health = observability.health
    app.state.metrics = observability.metrics
    app.observability = observability
    resolver = CallerResolver(settings, probe=service.is_importing)
    app.state.callers = resolver
    schema = build_schema(
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_tokens=settings.graphql_max_tokens,
        tracer=observability.tracer,
    )
    app.state.schema = schema
    graphql = GatewayGraphQL(
        schema,
        service,
        resolver,
        graphiql=settings.graphiql,
        introspection=settings.graphql_introspection,
        allowed_origins=settings.cors_origin_list,
    )
    app.router.routes.append(Route("/graphql", graphql, methods=["GET", "POST"]))
    # HTTP requests: telemetry -> CORS -> gate -> GraphQL edge -> REST edge -> FastAPI.
    rest_reads = StoredReads(app.handle, service=service, callers=resolver, prefix="/api/v1/")
    graphql_edge = ResponseCacheEdge(
        rest_reads,
        service=service,
        callers=resolver,
        path="/graphql",
        parse=schema.documents.parse,
    )
    gate = RequestGate.from_settings(graphql_edge, settings, resolver)
    telemetry = observability.middleware(app.handle, http=with_cors(gate, settings))
    app.entry = telemetry
    if service.responses is not None and observability.tracing is None:
        # Stored answers in one frame in front of that chain (app/front_door.py).
        app.entry = FrontDoor(
            telemetry,
            telemetry=telemetry,
            gate=gate,
            graphql=graphql_edge,
            rest=rest_reads,
            service=service,
            cors=bool(settings.cors_origin_list),
        )
    app.router.routes.append(WebSocketRoute("/graphql", graphql))
    app.include_router(health_router)
    app.include_router(rest_router)
    install_error_handlers(app)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
