"""Answers a repeated GraphQL query from stored bytes at the ASGI edge, before GraphQL runs."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from graphql import DocumentNode, GraphQLError, OperationType
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.callers import CallerResolver
from app.graphql.telemetry import INVALID, operation_label, selected_operation
from app.observability import note_operation
from app.service import BootService, StoredResponse
from app.stored_answers import MISSED_KEY, Captured, reader

log = logging.getLogger(__name__)

MAX_CACHEABLE_REQUEST = 256 * 1024


class ResponseCacheEdge:
    """ASGI middleware in front of `/graphql` (DESIGN.md, "Performance model": cache hits skip
    routing, parsing and JSON encoding)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: BootService,
        callers: CallerResolver,
        path: str,
        parse: Callable[[str], DocumentNode],
    ) -> None:
        self.app = app
        self.service = service
        self.callers = callers
        self.path = path
        self.parse = parse  # the schema's own: one token-limited, remembered parse a document
        self._known: dict[bytes, Target | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or self.service.responses is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        body = b""
        if method == "POST":
            body, complete = await read_body(receive, MAX_CACHEABLE_REQUEST)
            if not complete or not is_json(content_type(scope)):
                await self.app(scope, replay(body, receive, complete), send)
                return
            raw = body
        elif method == "GET":
            raw = b"?" + scope.get("query_string", b"")
        else:
            await self.app(scope, receive, send)
            return
        replayed = replay(body, receive, True)
        target = self.target(raw, method)
        if target is None:
            await self.app(scope, replayed, send)
            return
        caller = reader(self.callers, scope)
        if caller is None:
            await self.app(scope, replayed, send)
            return
        stored = None if scope.get(MISSED_KEY) else self.service.stored_response(caller, target.key)
        if stored is not None:
            note_operation(target.operation)
            await send(stored_answer(stored))
            await send({"type": "http.response.body", "body": stored.body})
            return
        if not target.query:
            await self.app(scope, replayed, send)
            return
        captured = Captured(send, (b"x-cache", b"MISS"))
        with self.service.track_dependencies() as reads:
            await self.app(scope, replayed, captured)
        if captured.status == 200 and captured.complete and captured.body:
            try:
                result = orjson.loads(captured.body)
            except orjson.JSONDecodeError:
                return
            if isinstance(result, dict) and not result.get("errors"):
                body = captured.body
                self.service.store_response(caller, target.key, body, reads, _stored_headers(body))

    def target(self, raw: bytes, method: str) -> Target | None:
        """What a request asks for, remembered by its exact bytes: a repeated request skips
        JSON parsing and hashing (the common case on the hit path)."""
        known = self._known.get(raw, _UNKNOWN)
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
        request = _json_object(raw) if method == "POST" else _query_params_of(raw[1:])
        document = request.get("query") if request else None
        variables = request.get("variables") if request else None
        operation = request.get("operationName") if request else None
        target = None
        if (
            isinstance(document, str)
            and isinstance(variables, dict | None)
            and isinstance(operation, str | None)
        ):
            target = self._target(document, variables, operation)
        if len(raw) <= MAX_REMEMBERED_REQUEST:
            if len(self._known) >= MAX_REMEMBERED:
                self._known.clear()
            self._known[raw] = target
        return target

    def _target(
        self, document: str, variables: dict[str, Any] | None, operation: str | None
    ) -> Target:
        key = self.service.response_key(document, variables, operation)
        try:
            parsed = self.parse(document)
        except GraphQLError:
            return Target(key=key, query=False, operation=INVALID)
        selected = selected_operation(parsed, operation)
        # Only queries may be answered from a stored response; never mutations or subscriptions.
        query = selected is not None and selected.operation is OperationType.QUERY
        return Target(key=key, query=query, operation=operation_label(parsed, operation))


_UNKNOWN = object()
MAX_REMEMBERED = 1024
MAX_REMEMBERED_REQUEST = 8 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    key: tuple[str, str]
    query: bool
    operation: str
    """The label metrics and logs give a stored answer (stored only after it validated)."""


async def read_body(
    receive: Receive, limit: int, first: Message | None = None
) -> tuple[bytes, bool]:
    """The request body, read until it ends (complete) or passes `limit` or the client leaves
    (not complete); `first` is a message already received."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = first if first is not None else await receive()
        first = None
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def replay(body: bytes, receive: Receive, complete: bool) -> Receive:
    """Hand the downstream app the body already read, then the rest of the stream."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed


def content_type(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value  # type: ignore[no-any-return]
    return None


def is_json(content_type: bytes | None) -> bool:
    """Whether a Content-Type header says JSON, the only body a stored answer is kept for."""
    if content_type is None:
        return False
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


def _json_object(body: bytes) -> MutableMapping[str, Any] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _query_params_of(query_string: bytes) -> MutableMapping[str, Any] | None:
    params = parse_qs(query_string.decode("latin-1"))
    if "query" not in params:
        return None
    request: dict[str, Any] = {"query": params["query"][0]}
    if "operationName" in params:
        request["operationName"] = params["operationName"][0]
    if "variables" in params:
        try:
            request["variables"] = orjson.loads(params["variables"][0])
        except orjson.JSONDecodeError:
            return None
    return request


def stored_answer(stored: StoredResponse, *extra: tuple[bytes, bytes]) -> Message:
    """The start of an answer with a stored GraphQL response (its body follows as is); `extra`
    headers are added (the request id)."""
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [*stored.headers, _HIT, *extra],
    }


def _stored_headers(body: bytes) -> tuple[tuple[bytes, bytes], ...]:
    # Kept with the answer, so a hit does not make them again.
    return ((b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()))


_HIT = (b"x-cache", b"HIT")
