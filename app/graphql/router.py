"""The GraphQL endpoint (HTTP GET/POST and graphql-transport-ws) with an offline GraphiQL page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import DocumentNode, GraphQLError, OperationType, get_operation_ast
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from app.auth.identity import CallerResolver, Identity, authorization_of
from app.core.errors import GatewayError, RateLimited, Unauthenticated
from app.graphql.context import GraphQLContext
from app.graphql.graphiql import GRAPHIQL_HEADERS, graphiql_page
from app.graphql.schema import GatewaySchema, code_errors
from app.service import BootService

PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")


class AuthenticatingWSHandler(BaseGraphQLTransportWSHandler[GraphQLContext, None]):
    """Authenticates at connection_init and closes with graphql-transport-ws codes: 4401 for a
    missing or wrong credential, 4429 over the rate limit (scopes are checked per operation)."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload") or {}
        if not self.connection_init_received and isinstance(payload, dict):
            view = self.view
            assert isinstance(view, GatewayGraphQL)
            try:
                await view.authenticate_websocket(self.context, payload)
            except RateLimited:
                self.connection_init_received = True
                await self.websocket.close(code=4429, reason="Too many requests")
                return
            except GatewayError:
                self.connection_init_received = True
                await self.websocket.close(code=4401, reason="Unauthorized")
                return
        await super().handle_connection_init(message)


class GatewayGraphQL(GraphQL[GraphQLContext, None]):
    graphql_transport_ws_handler_class = AuthenticatingWSHandler

    def __init__(
        self,
        schema: GatewaySchema,
        service: BootService,
        callers: CallerResolver,
        *,
        graphiql: bool = True,
        introspection: bool = True,
        static_prefix: str = "/static",
        **options: Any,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            multipart_uploads_enabled=True,
            **options,
        )
        self._service = service
        self._callers = callers
        self._parse = schema.documents.parse
        self._introspection = introspection
        self._page = graphiql_page(static_prefix) if graphiql else ""

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            return await super().run(request, context, root_value)
        finally:
            if isinstance(request, Request):
                # Multipart parts no variable refers to are spooled files nobody else closes.
                await request.close()

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
        # Strawberry lets subscriptions through HTTP for its streaming transports (off here),
        # and graphql-core then fails inside one as an internal error; they need the WebSocket.
        if _subscribes(request_data, self._parse):
            raise HTTPException(400, "subscriptions are served over WebSocket only")
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        code_errors(result)
        return await super().process_result(request, result)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GraphQLContext:
        if isinstance(request, WebSocket):
            # Known at connection_init (AuthenticatingWSHandler), whose payload may carry it.
            context = GraphQLContext(self._service, None, introspection=self._introspection)
        else:
            try:
                identity: Identity | None = self._callers.identify(request)
            except GatewayError:
                # The GraphiQL page needs no credential; an operation is refused later.
                identity = None
            context = GraphQLContext(self._service, identity, introspection=self._introspection)
        context.request = request
        if isinstance(response, Response):
            # Authorize sets the status of a refused operation on it.
            context.response = response
        return context

    async def authenticate_websocket(
        self, context: GraphQLContext, payload: dict[str, Any]
    ) -> None:
        """Sign the connection in from its connection_init payload's `Authorization` (browsers
        cannot set handshake headers), else the handshake's; raises a GatewayError."""
        websocket = context.request
        assert isinstance(websocket, WebSocket)
        credential = payload.get("Authorization", payload.get("authorization"))
        if credential is None:
            header = authorization_of(websocket.scope["headers"])
            credential = header.decode("latin-1") if header is not None else None
        if credential is not None and not isinstance(credential, str):
            credential = "-"  # not a credential at all: refused like a wrong one
        identity = self._callers.authenticate(credential)
        client = websocket.client.host if websocket.client else None
        self._callers.throttle(identity, client)

        # Only MAAS knows whether a well-formed key is real: a wrong one closes the socket as a
        # wrong token does.
        try:
            await self._callers.confirm(identity)
        except Unauthenticated:
            raise
        except GatewayError:
            pass  # MAAS trouble is for the operations to report

        def throttle() -> None:
            self._callers.throttle(identity, client)

        context.throttle = throttle
        context.sign_in(identity)

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
        response = Response(orjson.dumps(response_data), media_type="application/json")
        response.headers.raw.extend(sub_response.headers.raw)
        response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)


def _subscribes(request_data: GraphQLRequestData, parse: Callable[[str], DocumentNode]) -> bool:
    query = request_data.query
    # The substring check keeps the lookup off every ordinary query's path.
    if not isinstance(query, str) or "subscription" not in query:
        return False
    try:
        # The schema's own parse: token-limited and remembered, so the execution that follows
        # does not parse again, and a long document costs no more here than there.
        document = parse(query)
    except GraphQLError:
        return False  # the normal path reports the syntax error
    operation = get_operation_ast(document, request_data.operation_name)
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION
