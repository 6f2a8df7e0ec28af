"""GraphQL over WebSocket, in both subprotocols clients speak: graphql-transport-ws and the
legacy graphql-ws of subscriptions-transport-ws. A socket signs in at connection_init; one
operation's errors end that operation only (docs/architecture.md, "GraphQL over WebSocket")."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any, Protocol

from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    CompleteMessage,
    ConnectionErrorMessage,
    ErrorMessage,
    StartMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from app.auth.identity import CallerResolver, authorization_of
from app.auth.messages import unauthenticated_message
from app.core.errors import GatewayError, RateLimited, Unauthenticated
from app.graphql.context import GraphQLContext
from app.graphql.operations import UnchosenOperation, operation_to_run
from app.graphql.schema import GatewaySchema, code_errors
from app.http.admission import SIGNED_IN_KEY


class WebSocketView(Protocol):
    """What the handlers need of the endpoint."""

    callers: CallerResolver
    schema: GatewaySchema
    connection_init_wait_timeout: Any


class TransportWSHandler(BaseGraphQLTransportWSHandler[GraphQLContext, None]):
    """graphql-transport-ws. connection_init signs in, or closes with 4401 (a missing or wrong
    credential) or 4429 (over the rate limit); silence past the wait closes with 4408. Syntax,
    validation, operation and scope errors are `error` frames for their id."""

    async def handle_task_exception(self, error: Exception) -> None:
        # A client that left while a payload was being sent is a disconnect, logged once
        # as the socket closes, not a server fault with a traceback.
        if not isinstance(error, WebSocketDisconnected):
            await super().handle_task_exception(error)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload") or {}
        if not self.connection_init_received and isinstance(payload, dict):
            try:
                await sign_in(self.view, self.context, payload)  # type: ignore[arg-type]
            except GatewayError as error:
                self.connection_init_received = True
                code, reason = _close_code(error)
                await self.websocket.close(code=code, reason=reason)
                return
        await super().handle_connection_init(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and message["id"] not in self.operations:
            payload = message["payload"]
            problem = _operation_problem(self.view, payload)  # type: ignore[arg-type]
            if problem is not None:
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [problem.formatted]}
                )
                return
        await super().handle_subscribe(message)

    async def _handle_pre_execution_error(
        self, operation: Operation[GraphQLContext, None], result: PreExecutionError
    ) -> None:
        # Strawberry closes the whole socket (4400) on a syntax error, ending every other
        # operation on it; the protocol's `error` frame ends only this one.
        code_errors(result)
        await operation.send_initial_errors(result.errors or [])


class LegacyWSHandler(BaseGraphQLWSHandler[GraphQLContext, None]):
    """The legacy graphql-ws subprotocol (subscriptions-transport-ws, Apollo's old default):
    the same sign-in, answered with `connection_error`; the same wait for connection_init."""

    async def handle(self) -> None:
        waiting = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            waiting.cancel()
            with suppress(asyncio.CancelledError):
                await waiting

    async def _close_unless_initialised(self) -> None:
        view: WebSocketView = self.view  # type: ignore[assignment]
        await asyncio.sleep(view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        payload = message.get("payload") or {}
        if not self.connection_acknowledged and isinstance(payload, dict):
            try:
                await sign_in(self.view, self.context, payload)  # type: ignore[arg-type]
            except GatewayError as error:
                refusal: dict[str, object] = {
                    "message": _message(error),
                    "extensions": error.extensions,
                }
                await self.send_message(
                    ConnectionErrorMessage(type="connection_error", payload=refusal)
                )
                code, reason = _close_code(error)
                await self.websocket.close(code=code, reason=reason)
                return
        await super().handle_connection_init(message)

    async def handle_start(self, message: StartMessage) -> None:
        if self.connection_acknowledged:
            problem = _operation_problem(self.view, message["payload"])  # type: ignore[arg-type]
            if problem is not None:
                await self.send_message(
                    {"type": "error", "id": message["id"], "payload": problem.formatted}
                )
                return
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        # Strawberry's own runs subscriptions only, but the protocol's clients send queries
        # and mutations over it too; and its errors get their codes here.
        try:
            results = await self.schema.stream(
                query,
                variable_values=variables,
                operation_name=operation_name,
                context_value=self.context,
                root_value=self.root_value,
            )
            self.subscriptions[operation_id] = results
            async for result in results:
                if not isinstance(result, ExecutionResult):
                    error = GraphQLError("@defer and @stream are not served over WebSocket")
                    result = PreExecutionError(data=None, errors=[error])
                code_errors(result)
                if isinstance(result, PreExecutionError):
                    first = (result.errors or [GraphQLError("operation refused")])[0]
                    await self.send_message(
                        ErrorMessage(type="error", id=operation_id, payload=first.formatted)
                    )
                    return
                await self.send_data_message(result, operation_id)
            await self.send_message(CompleteMessage(type="complete", id=operation_id))
        except asyncio.CancelledError:
            with suppress(WebSocketDisconnected):
                await self.send_message(CompleteMessage(type="complete", id=operation_id))
        except WebSocketDisconnected:
            pass  # the client left mid-send: a disconnect, not a fault (as above)
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)


async def sign_in(view: WebSocketView, context: GraphQLContext, payload: dict[str, Any]) -> None:
    """Sign the connection in from its connection_init payload's `Authorization` (browsers
    cannot set handshake headers), else the handshake's; raises a GatewayError."""
    callers = view.callers
    websocket = context.request
    assert isinstance(websocket, WebSocket)
    credential = payload.get("Authorization", payload.get("authorization"))
    if credential is None:
        header = authorization_of(websocket.scope["headers"])
        credential = header.decode("latin-1") if header is not None else None
    if credential is not None and not isinstance(credential, str):
        credential = "-"  # not a credential at all: refused like a wrong one
    identity = callers.authenticate(credential)
    client = websocket.client.host if websocket.client else None
    await callers.throttle(identity, client)

    # Only MAAS knows whether a well-formed key is real: a wrong one closes the socket as a
    # wrong token does.
    try:
        await callers.confirm(identity)
    except Unauthenticated:
        raise
    except GatewayError:
        pass  # MAAS trouble is for the operations to report

    async def throttle() -> None:
        await callers.throttle(identity, client)

    async def spend(cost: int) -> None:
        await callers.spend(identity, cost, client)

    context.throttle = throttle
    context.spend = spend
    context.sign_in(identity)
    signed_in = websocket.scope.get(SIGNED_IN_KEY)
    if signed_in is not None:
        signed_in()  # no longer one of the sockets waiting to sign in


def _operation_problem(view: WebSocketView, payload: Any) -> GraphQLError | None:
    """The request error of an operation that names none of its document's, if any."""
    if not isinstance(payload, dict):
        return None  # strawberry answers a malformed message itself
    try:
        operation_to_run(
            payload.get("query"), payload.get("operationName"), view.schema.documents.parse
        )
    except UnchosenOperation as error:
        return GraphQLError(error.message, extensions={"code": "BAD_REQUEST"})
    return None


def _close_code(error: GatewayError) -> tuple[int, str]:
    if isinstance(error, RateLimited):
        return 4429, "Too many requests"
    return 4401, "Unauthorized"


def _message(error: GatewayError) -> str:
    return unauthenticated_message(error) if isinstance(error, Unauthenticated) else error.message
