"""Application factory: `create_app(settings)` wires client, cache, service and both faces."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
from fastapi import FastAPI
from graphql import GraphQLError
from opentelemetry.trace import TracerProvider
from starlette.routing import Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__
from app.auth.identity import CallerResolver
from app.cache import EntityCache
from app.core.settings import Settings
from app.graphql.cost import CostModel
from app.graphql.operations import OperationTargets
from app.graphql.persisted import PersistedDocuments, load_manifest
from app.graphql.router import GatewayGraphQL
from app.graphql.schema import GatewaySchema, build_schema
from app.http.admission import GRAPHQL_PATH, Admission, WebSocketAdmission
from app.http.cors import cors
from app.http.pipeline import Pipeline
from app.http.stored_answers import StoredAnswers
from app.http.telemetry import Observability
from app.maas.auth import MaasCredentials
from app.maas.client import MaasClient
from app.rest import OPENAPI as REST_OPENAPI
from app.rest import install_error_handlers
from app.rest import router as rest_router
from app.rest.docs import docs_router
from app.rest.health import router as health_router
from app.service import BootService, cache_policies

STATIC_DIR = Path(__file__).parent / "static"


class GatewayApp(FastAPI):
    """FastAPI behind the gateway's own entry pipeline (app/http/pipeline.py), so a stored
    answer skips FastAPI's per-request work too (docs/architecture.md, "Performance model")."""

    entry: ASGIApp | None = None
    observability: Observability | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.entry is not None:
            await self.entry(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def drain(self) -> None:
        """Called by the server once it stops accepting connections (app.cli.server)."""
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
    """Build the whole gateway; nothing is created at import time (docs/architecture.md,
    "Layers")."""
    settings = settings or Settings()
    cache = EntityCache(cache_policies(settings), maxsize=settings.cache_max_entries)
    service = BootService(cache, settings)
    observability = Observability(settings, service, tracer_provider)
    callers = CallerResolver(settings, probe=service.is_importing)
    app = GatewayApp(
        title="maas-gateway",
        version=__version__,
        description="GraphQL and REST over MAAS's boot-image API.",
        # FastAPI's pages load their assets from a CDN; /docs is served from ours (_routes), and
        # ReDoc, which needs inline styles and blob: workers, is off.
        docs_url=None,
        redoc_url=None,
        **REST_OPENAPI,
        lifespan=_lifespan(settings, cache, service, observability, callers, maas_transport),
    )
    app.state.settings = settings
    app.state.service = service
    app.state.health = observability.health
    app.state.metrics = observability.metrics
    app.state.callers = callers
    app.observability = observability
    schema = build_schema(
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_tokens=settings.graphql_max_tokens,
        max_cost=settings.graphql_max_cost,
        cost_model=CostModel(list_size=settings.graphql_cost_list_size),
        tracer=observability.tracer,
        max_plans=settings.graphql_max_plans,
    )
    app.state.schema = schema
    observability.metrics.executions = schema.plans.counts
    persisted = persisted_documents(settings, service, schema)
    _routes(app, settings, schema, service, callers, persisted)
    answers = None
    if service.responses is not None:
        targets = OperationTargets(service, schema.documents.parse, persisted)
        answers = StoredAnswers(service, targets)
    app.entry = Pipeline(
        app.handle,
        telemetry=observability.telemetry(),
        admission=Admission.from_settings(settings, callers),
        answers=answers,
        cors=cors(app.handle, settings),
        websockets=WebSocketAdmission(
            max_pending=settings.graphql_ws_max_pending,
            max_pending_per_client=settings.graphql_ws_max_pending_per_client,
        ),
    )
    return app


def persisted_documents(
    settings: Settings, service: BootService, schema: GatewaySchema
) -> PersistedDocuments:
    manifest = None
    if settings.graphql_trusted_documents:
        manifest = load_manifest(Path(settings.graphql_trusted_documents))
        # Trusted documents get their plans before the first request (app/graphql/plans.py).
        for text in manifest.values():
            with contextlib.suppress(GraphQLError):
                schema.plans.prepare(schema._schema, schema.documents.parse(text))
    return PersistedDocuments(
        settings.graphql_persisted_documents, service.documents, schema.documents.parse, manifest
    )


def _routes(
    app: GatewayApp,
    settings: Settings,
    schema: GatewaySchema,
    service: BootService,
    callers: CallerResolver,
    persisted: PersistedDocuments,
) -> None:
    graphql = GatewayGraphQL(
        schema,
        service,
        callers,
        graphiql=settings.graphiql,
        introspection=settings.graphql_introspection,
        connection_init_wait=settings.graphql_ws_init_timeout,
        persisted=persisted,
        allowed_origins=settings.cors_origin_list,
    )
    # Every method reaches the view, so a wrong one gets GraphQL's 405 (GatewayGraphQL).
    app.router.routes.append(Route(GRAPHQL_PATH, graphql))
    app.router.routes.append(WebSocketRoute(GRAPHQL_PATH, graphql))
    app.include_router(health_router)
    app.include_router(rest_router)
    if app.openapi_url is not None:
        app.include_router(docs_router(title=app.title, openapi_url=app.openapi_url))
    install_error_handlers(app)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _lifespan(
    settings: Settings,
    cache: EntityCache,
    service: BootService,
    observability: Observability,
    callers: CallerResolver,
    maas_transport: httpx.AsyncBaseTransport | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's life: the MAAS client, readiness probe, callers and Redis while it serves."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            MaasClient.from_settings(
                settings,
                _gateway_credentials(settings),
                transport=maas_transport,
                observer=observability.upstream_observer(),
            ) as maas,
            observability.running(maas),
        ):
            callers.start(maas)
            app.state.maas = maas
            observability.metrics.breakers = maas.breaker_states
            if settings.redis_url is not None:
                from app.cache.redis import RedisBackend

                # Started, not awaited: Redis down at start only shortens TTLs (RedisBackend).
                service.redis = RedisBackend(settings, cache)
                service.redis.start()
                service.documents.share(service.redis.document, service.redis.keep_document)
                callers.share(service.redis)
            try:
                yield
            finally:
                callers.share(None)
                callers.stop()
                if service.redis is not None:
                    await service.redis.close()
                    service.redis = None

    return lifespan


def _gateway_credentials(settings: Settings) -> MaasCredentials | None:
    if settings.maas_url is None:
        raise RuntimeError("MAAS_GATEWAY_MAAS_URL is required")
    if settings.maas_api_key is None and settings.auth_mode == "service":
        raise RuntimeError("MAAS_GATEWAY_MAAS_API_KEY is required in service mode")
    # In passthrough mode the configured key (if any) signs only the gateway's own calls.
    if settings.maas_api_key is None:
        return None
    return MaasCredentials.from_key(settings.maas_api_key.get_secret_value())
