"""The GraphQL endpoint (HTTP GET/POST and graphql-transport-ws) with an offline GraphiQL page."""

from __future__ import annotations

from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from app.callers import CallerResolver
from app.graphql.context import GraphQLContext
from app.graphql.graphiql import graphiql_page
from app.graphql.schema import code_errors
from app.service import BootService

PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")


class GatewayGraphQL(GraphQL[GraphQLContext, None]):
    def __init__(
        self,
        schema: BaseSchema,
        service: BootService,
        callers: CallerResolver,
        *,
        graphiql: bool = True,
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
        self._page = graphiql_page(static_prefix) if graphiql else ""

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

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        code_errors(result)
        return await super().process_result(request, result)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GraphQLContext:
        return GraphQLContext(self._service, self._callers.resolve(request))

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._page)

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
