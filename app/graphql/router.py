"""The GraphQL endpoint (HTTP GET/POST and graphql-transport-ws) with an offline GraphiQL page."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app.callers import CallerResolver
from app.graphql.context import GraphQLContext
from app.graphql.graphiql import graphiql_page
from app.service import BootService


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
            **options,
        )
        self._service = service
        self._callers = callers
        self._page = graphiql_page(static_prefix) if graphiql else ""

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GraphQLContext:
        return GraphQLContext(self._service, self._callers.resolve(request))

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._page)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)
