"""The gateway's outermost HTTP frame: a request a stored answer can serve is answered in one
pass, with the checks and records of the full chain; every other request takes that chain."""

from __future__ import annotations

import time
from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import GatewayError
from app.gate import API_PREFIX, GRAPHQL_PATH, RequestGate
from app.graphql.edge import MAX_CACHEABLE_REQUEST, ResponseCacheEdge, is_json, read_body, replay
from app.graphql.edge import stored_answer as stored_graphql_answer
from app.rest.edge import StoredReads
from app.rest.edge import stored_answer as stored_read_answer
from app.service import BootService, Caller
from app.stored_answers import MISSED_KEY, stored_answer_caller
from app.telemetry import Telemetry

_REST_PATHS = API_PREFIX + "/"


class FrontDoor:
    """Why one frame: under uvicorn every layer of the chain (telemetry, CORS, gate, edge) costs
    a coroutine, a pass over the headers and context-variable work, and on a stored answer
    those were a third of the gateway's CPU (docs/benchmarks.md). This frame scans the headers
    once and calls the pieces those layers are made of (`RequestGate.admit`, the edges' lookups
    and answers, `Telemetry.stored`), so a stored answer, the checks before it and the metrics
    and access line after it are the same whichever way a request comes.

    Left to the chain: anything but POST or GET /graphql and GET /api/v1/...; a body of unknown
    length (the gate counts it), over the limit (the gate answers 413) or not JSON; a request
    with an Origin when CORS is on (CORS adds its headers); a caller that cannot be identified,
    may not read or is over its rate (the chain answers 401 or 429 as usual); and every miss.
    The app does not put the front door in place when tracing is on: each traced request gets
    its span from the chain.
    """

    def __init__(
        self,
        chain: ASGIApp,
        *,
        telemetry: Telemetry,
        gate: RequestGate,
        graphql: ResponseCacheEdge,
        rest: StoredReads,
        service: BootService,
        cors: bool,
    ) -> None:
        self.chain = chain
        self.telemetry = telemetry
        self.gate = gate
        self.graphql = graphql
        self.rest = rest
        self.service = service
        self.cors = cors
        self.in_flight = telemetry.metrics.in_flight
        # A stored GraphQL answer is only kept for a body of at most MAX_CACHEABLE_REQUEST.
        self.max_body = min(gate.max_request_bytes, MAX_CACHEABLE_REQUEST)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Returns the awaitable of whichever path takes the request: no frame of its own.
        if scope["type"] == "http":
            path: str = scope["path"]
            method: str = scope["method"]
            if path == GRAPHQL_PATH:
                if method == "POST" or (method == "GET" and scope["query_string"]):
                    return self._graphql(scope, receive, send, method)
            elif method == "GET" and path.startswith(_REST_PATHS):
                return self._read(scope, receive, send)
        return self.chain(scope, receive, send)

    async def _graphql(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        started = time.perf_counter()
        headers = self._headers(scope)
        if headers is None or (
            method == "POST"
            and (b"content-length" not in headers or not _json(headers.get(b"content-type")))
        ):
            await self.chain(scope, receive, send)
            return
        body: bytes | None = None
        if method == "POST":
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body = message.get("body", b"")  # the usual case: the body in one part
            else:
                body, complete = await read_body(receive, self.max_body, message)
                if not complete:
                    await self.chain(scope, replay(body, receive, complete), send)
                    return
            raw = body
        else:
            raw = b"?" + scope["query_string"]
        # The caller first: nothing of the document is looked at for one that is not known.
        caller = self._admitted(scope, headers)
        target = self.graphql.target(raw, method) if caller is not None else None
        if caller is not None and target is not None and target.query:
            stored = self.service.stored_response(caller, target.key)
            if stored is not None:
                request_id, header = self.telemetry.request_id_of(headers.get(b"x-request-id"))
                start = stored_graphql_answer(stored, header)
                # Sent here rather than by a shared coroutine: one frame less on every hit.
                self.in_flight["graphql"] += 1
                try:
                    await send(start)
                    await send({"type": "http.response.body", "body": stored.body})
                finally:
                    self.in_flight["graphql"] -= 1
                    seconds = time.perf_counter() - started
                    self.telemetry.stored(
                        scope, "graphql", target.operation, request_id, 200, seconds
                    )
                return
            scope[MISSED_KEY] = True
        # The body already read goes to the chain with the rest of the stream.
        await self.chain(scope, receive if body is None else replay(body, receive, True), send)

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = self._headers(scope)
        caller = self._admitted(scope, headers) if headers is not None else None
        if caller is not None and headers is not None:
            key = self.rest.key(scope)
            stored = self.service.stored_response(caller, key)
            if stored is not None:
                request_id, header = self.telemetry.request_id_of(headers.get(b"x-request-id"))
                start, body = stored_read_answer(stored, headers.get(b"if-none-match"), header)
                self.in_flight["rest"] += 1
                try:
                    await send(start)
                    await send({"type": "http.response.body", "body": body})
                finally:
                    self.in_flight["rest"] -= 1
                    seconds = time.perf_counter() - started
                    operation = self.rest.operation(key)
                    self.telemetry.stored(
                        scope, "rest", operation, request_id, start["status"], seconds
                    )
                return
            scope[MISSED_KEY] = True
        await self.chain(scope, receive, send)

    def _headers(self, scope: Scope) -> dict[bytes, bytes] | None:
        """The request's headers by name, or None when the request is the chain's: a header
        given twice (the chain has its own rules for which one counts), an Origin while CORS
        is on, or a body longer than the limit."""
        listed = scope["headers"]
        headers: dict[bytes, bytes] = dict(listed)
        if len(headers) != len(listed) or (self.cors and b"origin" in headers):
            return None
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return None
        return headers

    def _admitted(self, scope: Scope, headers: dict[bytes, bytes]) -> Caller | None:
        """The caller, admitted (identified and counted against its rate, once: the chain's
        gate sees the mark), when it may be given a stored answer; else None."""
        try:
            identity = self.gate.admit(scope, headers.get(b"authorization"))
        except GatewayError:
            # The chain's gate meets the same refusal and answers it; a refused request takes
            # nothing from its rate, so it is not counted twice.
            return None
        if not self.gate.callers.confirmed(identity.caller):
            return None  # the chain's gate asks MAAS about the key first
        return stored_answer_caller(identity)


def _json(content_type: bytes | None) -> bool:
    # The common spelling first: this runs before every stored GraphQL answer.
    return content_type == b"application/json" or is_json(content_type)
