"""The gateway's one HTTP entry path: telemetry, CORS, admission, stored answers, then the app.
Every request takes it, stored answers and traced requests alike (docs/architecture.md, "The
life of a request")."""

from __future__ import annotations

import sys
from collections.abc import Awaitable

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.identity import Identity
from app.core.errors import GatewayError, PayloadTooLarge
from app.core.permissions import Permission
from app.http.admission import (
    API_PREFIX,
    GRAPHQL_PATH,
    Admission,
    CountedBody,
    WebSocketAdmission,
)
from app.http.errors import refuse
from app.http.exchange import Exchange
from app.http.stored_answers import (
    MAX_CACHEABLE_REQUEST,
    StoredAnswers,
    Target,
    read_body,
    replay,
)
from app.http.telemetry import Telemetry
from app.observability.context import current_request
from app.service import Caller

# Where the pipeline keeps a request's exchange for the steps behind CORS and the app's
# context, which get only the ASGI scope.
_EXCHANGE_KEY = "maas_gateway.exchange"
_REST = API_PREFIX + "/"
READ = Permission.READ


class Pipeline:
    """Steps in order: telemetry begins; CORS (when configured and the request has an Origin)
    wraps the rest, entering the pipeline again behind it; admission checks the body's size,
    the credential and the rate; a reader's query or read is answered from a stored answer,
    or the app answers and the answer is stored; telemetry ends, with the metrics, the access
    line and, if tracing is on, the span.

    Why one frame: while a request waits for its body or for the server to take its answer,
    every coroutine between the server and the waiting line is suspended and resumed. A stored
    answer's waits are all in `__call__`; only the app and the rare steps (a passthrough key's
    confirmation, a chunked body) go deeper."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        telemetry: Telemetry,
        admission: Admission,
        answers: StoredAnswers | None,
        cors: CORSMiddleware | None = None,
        websockets: WebSocketAdmission | None = None,
    ) -> None:
        self.app = app
        self.websockets = websockets
        self.telemetry = telemetry
        self.admission = admission
        self.answers = answers
        self.cors = cors
        if cors is not None:
            cors.app = self

    # One frame on purpose (see the class docstring), so more branches than ruff's bound.
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        exchange: Exchange | None = scope.get(_EXCHANGE_KEY)
        owner = exchange is None  # else this is the pipeline again, behind CORS
        if exchange is None:
            exchange = scope[_EXCHANGE_KEY] = self.telemetry.begin(scope, send)
            send = exchange
        try:
            if owner and self.cors is not None and b"origin" in exchange.headers:
                await self.cors(scope, receive, send)
                return
            graphql = scope["path"] == GRAPHQL_PATH
            try:
                limit, identity = self.admission.check(scope, exchange)
                if identity is not None and self.admission.callers.limiter is not None:
                    await self.admission.throttle(scope, identity)
                if graphql and identity and not self.admission.callers.confirmed(identity.caller):
                    await self._confirm(exchange, identity)
            except GatewayError as refusal:
                await refuse(scope, send, refusal, graphql)
                return
            counted = CountedBody(scope, receive, send, limit) if exchange.chunked else None
            if counted is not None:  # a body of unknown length, stopped past the limit
                receive, send = counted.receive, counted.send
            try:
                answers = self.answers
                # Stored answers are read results: only a reader may have one.
                caller = (
                    identity.caller if answers and identity and READ in identity.scopes else None
                )
                target = read = answer = None
                if caller is not None and answers is not None and graphql:
                    if scope["method"] == "POST" and exchange.json:
                        message = await receive()
                        if message["type"] == "http.request" and not message.get("more_body"):
                            read = (message.get("body", b""), True)  # the usual case: one part
                        else:
                            read = await read_body(receive, MAX_CACHEABLE_REQUEST, message)
                    target, answer = answers.graphql_answer(caller, scope, read, exchange)
                elif caller is not None and answers is not None and _reads_rest(scope):
                    answer = answers.read_answer(caller, scope, exchange)
                if answer is not None:
                    await send(answer[0])
                    await send({"type": "http.response.body", "body": answer[1]})
                    return
                if read is not None:  # the body already read goes on to the app
                    receive = replay(read[0], receive, read[1])
                await self._onward(scope, receive, send, caller, target)
            except PayloadTooLarge:
                if counted is None or not counted.answered:
                    raise
        finally:
            if owner:
                # The exchange holds the server's send, which holds the scope: left in the
                # scope, it would make a cycle only the garbage collector could free.
                del scope[_EXCHANGE_KEY]
                self.telemetry.end(scope, exchange, sys.exception())

    async def _onward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller | None,
        target: Target | None,
    ) -> None:
        """The app's answer to a request no stored answer served, stored where one may be."""
        answers = self.answers
        if caller is None or answers is None:
            await self._app(scope, receive, send)
        elif target is not None and target.query:
            await answers.store_graphql(self._app, scope, receive, send, caller, target)
        elif scope["path"] != GRAPHQL_PATH and _reads_rest(scope):
            await answers.store_read(self._app, scope, receive, send, caller)
        else:
            await self._app(scope, receive, send)

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, with the request's record in context for the layers below: the operation
        and cache outcome they note, the MAAS calls they count, the id logs and MAAS get. A
        stored answer needs none of it, so only the app pays for setting it."""
        await _in_context(scope[_EXCHANGE_KEY], self.app(scope, receive, send))

    async def _confirm(self, exchange: Exchange, identity: Identity) -> None:
        # MAAS is asked: the call is this request's, counted and sent with its id.
        await _in_context(exchange, self.admission.callers.confirm(identity))

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        sockets = self.websockets
        release = sockets.admit(scope) if sockets is not None else None
        if sockets is not None and release is None:
            # Too many sockets wait to sign in: refused before accept (an HTTP 403 to the
            # client), so none of them costs a handler.
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1013, "reason": "Try again later"})
            return
        try:
            await self.telemetry.websocket(self.app, scope, receive, send)
        finally:
            if release is not None:
                release()


async def _in_context(exchange: Exchange, work: Awaitable[None]) -> None:
    token = current_request.set(exchange)
    try:
        await work
    finally:
        current_request.reset(token)


def _reads_rest(scope: Scope) -> bool:
    path: str = scope["path"]
    return scope["method"] == "GET" and path.startswith(_REST)
