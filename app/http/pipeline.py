"""The gateway's one HTTP entry path: telemetry, CORS, admission, stored answers, then the app.
Every request takes it, stored answers and traced requests alike (docs/architecture.md, "The
life of a request")."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import GatewayError, PayloadTooLarge
from app.http.admission import GRAPHQL_PATH, Admission, CountedBody, too_large
from app.http.errors import refuse
from app.http.stored_answers import StoredAnswers, reader
from app.http.telemetry import Telemetry
from app.observability.context import RequestRecord
from app.service import Caller

# Where the pipeline keeps a request's head and record for the steps behind CORS, which passes
# only the ASGI scope on.
_HEAD_KEY = "maas_gateway.head"
_RECORD_KEY = "maas_gateway.record"


class RequestHead:
    """The headers the pipeline acts on, found in one pass over the request's headers."""

    __slots__ = (
        "authorization",
        "chunked",
        "credentials",
        "if_none_match",
        "json",
        "length",
        "multipart",
        "origin",
        "request_id",
    )

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.authorization: bytes | None = None
        self.credentials = 0
        self.length: int | None = None
        self.json = self.multipart = self.chunked = False
        self.origin = self.request_id = self.if_none_match = None
        for name, value in headers:
            if name == b"authorization":
                self.authorization = value
                self.credentials += 1
            elif name == b"content-type":
                # The common spelling first: this runs before every stored GraphQL answer.
                self.json = value == b"application/json" or _is_json(value)
                self.multipart = value[:19].lower() == b"multipart/form-data"
            elif name == b"content-length":
                self.length = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                self.chunked = True
            elif name == b"origin":
                self.origin = value
            elif name == b"x-request-id" and self.request_id is None:
                self.request_id = value
            elif name == b"if-none-match" and self.if_none_match is None:
                self.if_none_match = value


class Pipeline:
    """Steps in order, each a plain call on the request's one head: telemetry begins; CORS
    (when configured and the request has an Origin) wraps the rest; admission checks the body's
    size, the credential and the rate; a reader's query or read is answered from a stored
    answer, or the app answers and the answer is stored; telemetry ends, with the metrics,
    the access line and, if tracing is on, the span."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        telemetry: Telemetry,
        admission: Admission,
        answers: StoredAnswers | None,
        cors: CORSMiddleware | None = None,
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.admission = admission
        self.answers = answers
        self.cors = cors
        if cors is not None:
            cors.app = self._behind_cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self.telemetry.websocket(self.app, scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        head = RequestHead(scope["headers"])
        exchange = self.telemetry.begin(scope, head.request_id, send)
        try:
            if self.cors is not None and head.origin is not None:
                scope[_HEAD_KEY], scope[_RECORD_KEY] = head, exchange.record
                await self.cors(scope, receive, exchange.responder)
            else:
                await self._admitted(scope, receive, exchange.responder, head, exchange.record)
        except BaseException as error:
            self.telemetry.end(scope, exchange, error)
            raise
        self.telemetry.end(scope, exchange)

    async def _behind_cors(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._admitted(scope, receive, send, scope[_HEAD_KEY], scope[_RECORD_KEY])

    async def _admitted(
        self, scope: Scope, receive: Receive, send: Send, head: RequestHead, record: RequestRecord
    ) -> None:
        limit = self.admission.body_limit(scope["method"], scope["path"], head)
        graphql = scope["path"] == GRAPHQL_PATH
        if head.length is not None and head.length > limit:
            await refuse(scope, send, too_large(limit), graphql)
            return
        caller = None
        if self.admission.guards(scope):
            try:
                identity = self.admission.admit(scope, head)
                if self.admission.unconfirmed(scope, identity):
                    await self.admission.callers.confirm(identity)
            except GatewayError as error:
                await refuse(scope, send, error, graphql)
                return
            caller = reader(identity)
        if head.chunked and head.length is None:
            # The server stops a body at its declared length; only one of unknown length is
            # counted.
            counted = CountedBody(scope, receive, send, limit)
            try:
                await self._answered(scope, counted.receive, counted.send, head, caller, record)
            except PayloadTooLarge:
                if not counted.answered:
                    raise
            return
        await self._answered(scope, receive, send, head, caller, record)

    async def _answered(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        head: RequestHead,
        caller: Caller | None,
        record: RequestRecord,
    ) -> None:
        if self.answers is None or caller is None:
            await self.app(scope, receive, send)
            return
        await self.answers.serve(self.app, scope, receive, send, head, caller, record)


def _is_json(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"
