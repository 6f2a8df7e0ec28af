"""The GraphQL endpoint (HTTP GET and POST, and WebSockets) with an offline GraphiQL page."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import DocumentNode, OperationType
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from app.auth.identity import CallerResolver, Identity
from app.core.errors import GatewayError
from app.graphql.context import GraphQLContext
from app.graphql.graphiql import GRAPHIQL_HEADERS, graphiql_page
from app.graphql.operations import RequestError, UnchosenOperation, operation_to_run
from app.graphql.persisted import PersistedDocuments
from app.graphql.schema import GatewaySchema, code_errors
from app.graphql.websocket import LegacyWSHandler, TransportWSHandler
from app.http.errors import graphql_request_error
from app.http.media import GRAPHQL_RESPONSE, JSON, graphql_media_type
from app.service import BootService

PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")


class GatewayGraphQL(GraphQL[GraphQLContext, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(
        self,
        schema: GatewaySchema,
        service: BootService,
        callers: CallerResolver,
        *,
        graphiql: bool = True,
        introspection: bool = True,
        static_prefix: str = "/static",
        connection_init_wait: float = 10.0,
        persisted: PersistedDocuments | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=connection_init_wait),
            multipart_uploads_enabled=True,
            **options,
        )
        self._service = service
        self.callers = callers
        self._persisted = persisted or PersistedDocuments(
            "off", service.documents, schema.documents.parse
        )
        self._parse = schema.documents.parse
        self._introspection = introspection
        self._page = graphiql_page(static_prefix) if graphiql else ""

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        response = None
        try:
            response = await super().run(request, context, root_value)
            return response
        except HTTPException as error:
            if not isinstance(request, Request):
                raise
            # A request error is GraphQL's `errors` too, never plain text (GraphQL over HTTP).
            media_type = _asked_media_type(request)
            if not isinstance(error, RequestError):  # strawberry's own
                error = RequestError(error.status_code, error.reason)
            status = error.legacy_status if media_type == JSON else error.status_code
            extensions = {"code": error.code}
            return graphql_request_error(
                status, error.reason, extensions, media_type, error.headers
            )
        finally:
            if isinstance(request, Request):
                if not isinstance(response, StreamingResponse):
                    _release_deferred_reads(request)  # no payload is coming to wait for
                # Multipart parts no variable refers to are spooled files nobody else closes.
                await request.close()

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        async def released() -> AsyncIterator[str]:
            # Parts: the boundary, then the first payload; the deferred detail reads are sent
            # once the server has taken it, so their CPU does not hold the list back.
            try:
                parts = 0
                async for part in stream():
                    yield part
                    parts += 1
                    if parts == 2:
                        _release_deferred_reads(request)
            finally:
                _release_deferred_reads(request)

        return await super().create_streaming_response(request, released, sub_response, headers)

    async def parse_http_body(self, request: Any) -> Any:
        # Browsers send multipart forms cross-site without a preflight; requiring a header a
        # form cannot set keeps uploads CSRF-safe (strawberry CVE-2024-47082, Apollo's rule).
        content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
        if content_type == "multipart/form-data" and not any(
            name in request.headers for name in PREFLIGHT_HEADERS
        ):
            raise HTTPException(
                400,
                "multipart GraphQL requests need an Apollo-Require-Preflight header "
                "(CSRF protection)",
            )
        return await super().parse_http_body(request)

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        request_data.query = await self._persisted.resolve(
            request_data.query, request_data.extensions, context.identity
        )
        _check_operation(request_data, request_adapter.method, self._parse)
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        code_errors(result)
        response = await super().process_result(request, result)
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            # Stopped before execution (syntax, validation, variables, scope): nothing ran, so
            # there is no `data` entry (GraphQL spec, "Response Format").
            del response["data"]
        return response

    async def _process_stream_result(
        self, request: Any, value: Any, all_pending: list[Any]
    ) -> tuple[GraphQLHTTPResponse, list[Any]]:
        # A deferred fragment's errors skip process_result: code them here, so they say no
        # more than the initial payload's do.
        for part in (
            *(getattr(value, "incremental", None) or ()),
            *(getattr(value, "completed", None) or ()),
        ):
            code_errors(part)
        return await super()._process_stream_result(request, value, all_pending)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        if isinstance(request, Request):
            sub_response.media_type = _asked_media_type(request)
        return sub_response

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GraphQLContext:
        if isinstance(request, WebSocket):
            # Known at connection_init (AuthenticatingWSHandler), whose payload may carry it.
            context = GraphQLContext(self._service, None, introspection=self._introspection)
        else:
            try:
                identity: Identity | None = self.callers.identify(request)
            except GatewayError:
                # The GraphiQL page needs no credential; an operation is refused later.
                identity = None
            context = GraphQLContext(self._service, identity, introspection=self._introspection)
            if identity is not None:
                context.loaders.first_payload = request.scope[_FIRST_PAYLOAD] = asyncio.Event()
                if self.callers.budget is not None:
                    client = request.client.host if request.client else None
                    context.spend = functools.partial(self.callers.spend, identity, client=client)
        context.request = request
        if isinstance(response, Response):
            # Authorize sets the status of a refused operation on it.
            context.response = response
        return context

    def is_request_allowed(self, request: Any) -> bool:
        if request.method not in ("GET", "POST"):
            raise RequestError(
                405, "GraphQL is served over GET and POST", headers={"Allow": "GET, POST"}
            )
        return True

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._page, headers=GRAPHIQL_HEADERS)

    def encode_json(self, data: object) -> str:
        # Websocket messages must be text frames: graphql-ws clients reject binary ones.
        return orjson.dumps(data).decode()

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        media_type = sub_response.media_type or JSON
        response = Response(orjson.dumps(response_data), media_type=media_type)
        response.headers.raw.extend(sub_response.headers.raw)
        response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        elif media_type == GRAPHQL_RESPONSE and _request_error(response_data):
            # The new media type tells a request error by its status; application/json
            # answers 200 for any well-formed request (GraphQL over HTTP, "Legacy watershed").
            response.status_code = 400
        return response

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        value = super().parse_json(data)
        # A body of `null`, `3` or `"text"` parses as JSON but is no GraphQL request.
        if not isinstance(value, dict | list):
            raise HTTPException(400, "the request body must be a JSON object")
        return value


def _asked_media_type(request: Request) -> str:
    accept = request.headers.get("accept")
    return graphql_media_type(None if accept is None else accept.encode("latin-1"))


_FIRST_PAYLOAD = "maas_gateway.first_payload"


def _release_deferred_reads(request: Request | WebSocket) -> None:
    event: asyncio.Event | None = request.scope.get(_FIRST_PAYLOAD)
    if event is not None:
        event.set()


def _request_error(response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]) -> bool:
    return isinstance(response_data, dict) and "data" not in response_data


def _check_operation(
    request_data: GraphQLRequestData, method: str, parse: Callable[[str], DocumentNode]
) -> None:
    """Refuse a request that singles out no operation, a mutation sent by GET, and a
    subscription over HTTP (it would fail inside graphql-core as an internal error)."""
    try:
        operation = operation_to_run(request_data.query, request_data.operation_name, parse)
    except UnchosenOperation as error:
        raise HTTPException(400, error.message) from None
    if operation is None:
        return
    if operation.operation is OperationType.SUBSCRIPTION:
        raise HTTPException(400, "subscriptions are served over WebSocket only")
    if operation.operation is OperationType.MUTATION and method == "GET":
        raise RequestError(405, "mutations are sent with POST", headers={"Allow": "POST"})
