"""Stored answers, one mechanism for both faces: a repeated read is answered from the bytes the
app gave before, until anything that answer read changes (docs/architecture.md, "Caching")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.identity import Identity
from app.core.permissions import Permission
from app.observability.context import RequestRecord
from app.service import BootService, Caller, StoredResponse

if TYPE_CHECKING:
    from app.http.pipeline import RequestHead

MAX_CACHEABLE_REQUEST = 256 * 1024
"""A GraphQL body longer than this is never looked up or stored: the bytes are the key."""
MAX_OPERATIONS = 4096
"""Route names remembered for the operation label of stored REST answers, bounded."""
# Headers a stored REST answer does not keep: each answer writes its own.
_VOLATILE = frozenset({b"x-cache", b"content-length", b"date", b"server", b"x-request-id"})
_HIT = (b"x-cache", b"HIT")
_MISS = (b"x-cache", b"MISS")


@dataclass(frozen=True, slots=True)
class Target:
    """What a GraphQL request asks for, as stored answers see it."""

    key: tuple[str, str]
    query: bool
    """Only queries are answered from a stored response; never mutations or subscriptions."""
    operation: str
    """The label metrics and logs give a stored answer (stored only after it validated)."""


GraphQLTargets = Callable[[bytes, str], Target | None]
"""The GraphQL face's reading of a request (its JSON body, or `?` and its query string)."""


def reader(identity: Identity) -> Caller | None:
    """The identity's caller if it may be given stored answers: they are read results, so only
    a reader may have one, even one it stored itself."""
    return identity.caller if identity.allows(Permission.READ) else None


class StoredAnswers:
    """Looks up a stored answer for GraphQL queries and REST reads, and stores what the app
    answers on a miss, with the entity reads it made (so a write makes it miss)."""

    def __init__(
        self,
        service: BootService,
        targets: GraphQLTargets,
        *,
        graphql_path: str,
        rest_prefix: str,
    ) -> None:
        self.service = service
        self.targets = targets
        self.graphql_path = graphql_path
        self.rest_prefix = rest_prefix
        self._operations: dict[tuple[str, bytes], str] = {}

    async def serve(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        head: RequestHead,
        caller: Caller,
        record: RequestRecord,
    ) -> None:
        """Answer from a stored answer, or let `app` answer and store what it says."""
        method = scope["method"]
        if scope["path"] == self.graphql_path:
            await self._graphql(app, scope, receive, send, head, caller, record)
        elif method == "GET" and scope["path"].startswith(self.rest_prefix):
            await self._read(app, scope, receive, send, head, caller, record)
        else:
            await app(scope, receive, send)

    async def _graphql(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        head: RequestHead,
        caller: Caller,
        record: RequestRecord,
    ) -> None:
        method = scope["method"]
        if method == "POST" and head.json:
            body, complete = await read_body(receive, MAX_CACHEABLE_REQUEST)
            receive = replay(body, receive, complete)
            target = self.targets(body, method) if complete else None
        elif method == "GET" and scope["query_string"]:
            target = self.targets(b"?" + scope["query_string"], method)
        else:
            target = None
        if target is None or not target.query:
            await app(scope, receive, send)
            return
        stored = self.service.stored_response(caller, target.key)
        if stored is not None:
            record.operation = target.operation
            await send(
                {"type": "http.response.start", "status": 200, "headers": [*stored.headers, _HIT]}
            )
            await send({"type": "http.response.body", "body": stored.body})
            return
        captured = Captured(send, _MISS)
        with self.service.track_dependencies() as reads:
            await app(scope, receive, captured)
        if captured.status == 200 and captured.complete and _no_errors(captured.body):
            body = captured.body
            headers = ((b"content-type", b"application/json"), _length(body))
            self.service.store_response(caller, target.key, body, reads, headers)

    async def _read(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        head: RequestHead,
        caller: Caller,
        record: RequestRecord,
    ) -> None:
        key = ("rest", scope["path"], scope["query_string"])
        stored = self.service.stored_response(caller, key)
        if stored is not None:
            record.operation = self._operations.get(key[1:], "unrouted")
            record.cache = "HIT"
            start, body = read_answer(stored, head.if_none_match)
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        captured = Captured(send)
        with self.service.track_dependencies() as reads:
            await app(scope, receive, captured)
        if captured.status != 200 or not captured.complete:
            return
        headers = tuple((name, value) for name, value in captured.headers if name not in _VOLATILE)
        route = scope.get("route")
        if self.service.store_response(caller, key, captured.body, reads, headers) and route:
            if len(self._operations) >= MAX_OPERATIONS:
                self._operations.clear()
            self._operations[key[1:]] = route.name


def read_answer(stored: StoredResponse, wanted: bytes | None) -> tuple[Message, bytes]:
    """The start and body of an answer with a stored read: 304 and no body when `wanted` (the
    If-None-Match header) matches its ETag, else 200."""
    headers = stored.headers
    if wanted is not None:
        etag = next((value for name, value in headers if name == b"etag"), None)
        if etag is not None and none_match(wanted.decode("latin-1"), etag.decode("latin-1")):
            start = {"type": "http.response.start", "status": 304, "headers": [*headers, _HIT]}
            return start, b""
    body = stored.body
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [*headers, _length(body), _HIT],
    }
    return start, body


def none_match(header: str | None, etag: str) -> bool:
    """If-None-Match uses weak comparison (RFC 9110 §13.1.2): `*`, or any listed tag."""
    if not header:
        return False
    wanted = _opaque(etag)
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or _opaque(candidate) == wanted:
            return True
    return False


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode())


def _no_errors(body: bytes) -> bool:
    # Only a complete, error-free result is worth answering again.
    try:
        result = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(result, dict) and not result.get("errors")


class Captured:
    """Passes an answer through while keeping a copy of its status, headers and body;
    `mark` is a header added to the answer on its way (e.g. X-Cache: MISS)."""

    def __init__(self, send: Send, mark: tuple[bytes, bytes] | None = None) -> None:
        self._send = send
        self._mark = mark
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.complete = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
            if self._mark is not None:
                message["headers"] = [*self.headers, self._mark]
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        await self._send(message)


async def read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, read until it ends (complete) or passes `limit` or the client leaves
    (not complete)."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        return message.get("body", b""), True  # the usual case: the body in one part
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False
        message = await receive()


def replay(body: bytes, receive: Receive, complete: bool) -> Receive:
    """Hand the app the body already read, then the rest of the stream."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed
