"""Answers a repeated GraphQL query from stored bytes at the ASGI edge, before GraphQL runs."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

import orjson
from graphql import GraphQLSyntaxError, OperationDefinitionNode, OperationType, parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.callers import CallerResolver
from app.graphql.telemetry import operation_label
from app.observability import note_operation
from app.service import BootService
from app.stored_answers import Captured, reader

log = logging.getLogger(__name__)

MAX_CACHEABLE_REQUEST = 256 * 1024


@lru_cache(maxsize=512)
def is_query(document: str, operation_name: str | None) -> bool:
    """Only queries may be answered from a stored response; never mutations or subscriptions."""
    try:
        parsed = parse(document, max_tokens=5000)
    except GraphQLSyntaxError:
        return False
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return len(operations) == 1 and bool(operations[0].operation is OperationType.QUERY)


class ResponseCacheEdge:
    """ASGI middleware in front of `/graphql` (DESIGN.md, "Performance model": cache hits skip
    routing, parsing and JSON encoding)."""

    def __init__(
        self, app: ASGIApp, *, service: BootService, callers: CallerResolver, path: str
    ) -> None:
        self.app = app
        self.service = service
        self.callers = callers
        self.path = path
        self._known: dict[bytes, _Target | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or self.service.responses is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        body = b""
        if method == "POST":
            body, complete = await _read_body(receive, MAX_CACHEABLE_REQUEST)
            if not complete or not _is_json(scope):
                await self.app(scope, _replay(body, receive, complete), send)
                return
            raw = body
        elif method == "GET":
            raw = b"?" + scope.get("query_string", b"")
        else:
            await self.app(scope, receive, send)
            return
        replay = _replay(body, receive, True)
        target = self._target(raw, method)
        if target is None:
            await self.app(scope, replay, send)
            return
        caller = reader(self.callers, scope)
        if caller is None:
            await self.app(scope, replay, send)
            return
        stored = self.service.cached_response(caller, target.key)
        if stored is not None:
            note_operation(target.operation)
            await _send_json(send, stored, b"HIT")
            return
        if not target.query:
            await self.app(scope, replay, send)
            return
        captured = Captured(send, (b"x-cache", b"MISS"))
        with self.service.track_dependencies() as reads:
            await self.app(scope, replay, captured)
        if captured.status == 200 and captured.complete and captured.body:
            try:
                result = orjson.loads(captured.body)
            except orjson.JSONDecodeError:
                return
            if isinstance(result, dict) and not result.get("errors"):
                self.service.store_response(caller, target.key, captured.body, reads)

    def _target(self, raw: bytes, method: str) -> _Target | None:
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
            target = _Target(
                key=self.service.response_key(document, variables, operation),
                query=is_query(document, operation),
                operation=operation_label(document, operation),
            )
        if len(raw) <= MAX_REMEMBERED_REQUEST:
            if len(self._known) >= MAX_REMEMBERED:
                self._known.clear()
            self._known[raw] = target
        return target


_UNKNOWN = object()
MAX_REMEMBERED = 1024
MAX_REMEMBERED_REQUEST = 8 * 1024


@dataclass(frozen=True, slots=True)
class _Target:
    key: tuple[str, str]
    query: bool
    operation: str
    """The label metrics and logs give a stored answer (stored only after it validated)."""


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive, complete: bool) -> Receive:
    """Hand the downstream app the body already read, then the rest of the stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type: bytes = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json"
    return False


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


async def _send_json(send: Send, body: bytes, cache: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-cache", cache),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
