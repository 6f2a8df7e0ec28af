"""Stored answers, one mechanism for both faces: a repeated read is answered from the bytes the
app gave before, until anything that answer read changes (docs/architecture.md, "Caching")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.exchange import Exchange
from app.http.media import GRAPHQL_RESPONSE, JSON, graphql_media_type
from app.service import BootService, Caller, StoredResponse

MAX_CACHEABLE_REQUEST = 256 * 1024
"""A GraphQL body longer than this is never looked up or stored: the bytes are the key."""
MAX_OPERATIONS = 4096
"""Route names remembered for the operation label of stored REST answers, bounded."""
# Headers a stored REST answer does not keep: each answer writes its own.
_VOLATILE = frozenset({b"x-cache", b"content-length", b"date", b"server", b"x-request-id"})
_HIT = (b"x-cache", b"HIT")
_MEDIA_TYPES = {
    media_type: (b"content-type", media_type.encode()) for media_type in (JSON, GRAPHQL_RESPONSE)
}
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


class StoredAnswers:
    """Looks up a stored answer for GraphQL queries and REST reads, and stores what the app
    answers on a miss, with the entity reads it made (so a write makes it miss)."""

    def __init__(self, service: BootService, targets: GraphQLTargets) -> None:
        self.service = service
        self.targets = targets
        self._operations: dict[tuple[str, bytes], str] = {}

    def graphql_answer(
        self, caller: Caller, scope: Scope, read: tuple[bytes, bool] | None, record: Exchange
    ) -> tuple[Target | None, tuple[Message, bytes] | None]:
        """What a GraphQL request asks for (from its body when `read`, else from a GET's query
        string), and the start and body of its stored answer, if it is a query that has one."""
        target = None
        if read is not None:
            target = self.targets(read[0], "POST") if read[1] else None
        elif scope["method"] == "GET" and scope["query_string"]:
            target = self.targets(b"?" + scope["query_string"], "GET")
        if target is None or not target.query:
            return target, None
        stored = self.service.stored_response(caller, target.key)
        if stored is None:
            return target, None
        record.operation = target.operation
        media_type = _MEDIA_TYPES[graphql_media_type(record.headers.get(b"accept"))]
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [media_type, *stored.headers, _HIT],
        }
        return target, (start, stored.body)

    def read_answer(
        self, caller: Caller, scope: Scope, record: Exchange
    ) -> tuple[Message, bytes] | None:
        """The start and body of a stored answer to a REST read (a 304 when If-None-Match
        matches its ETag), or None."""
        key = ("rest", scope["path"], scope["query_string"])
        stored = self.service.stored_response(caller, key)
        if stored is None:
            return None
        record.operation = self._operations.get(key[1:], "unrouted")
        record.cache = "HIT"
        return read_answer_of(stored, record.headers.get(b"if-none-match"))

    async def store_graphql(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        target: Target,
    ) -> None:
        """Let `app` answer a query no stored answer serves, and store a complete, error-free
        result with the entity reads it made."""
        captured = Captured(send, _MISS)
        with self.service.track_dependencies() as reads:
            await app(scope, receive, captured)
        if captured.status == 200 and captured.complete and _no_errors(captured.body):
            body = captured.body
            # The content type is the asker's choice (graphql_answer), not part of the answer.
            self.service.store_response(caller, target.key, body, reads, (_length(body),))

    async def store_read(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, caller: Caller
    ) -> None:
        """Let `app` answer a REST read no stored answer serves, and store a complete 200."""
        key = ("rest", scope["path"], scope["query_string"])
        captured = Captured(send)
        with self.service.track_dependencies() as reads:
            await app(scope, receive, captured)
        if captured.status != 200 or not captured.complete:
            return
        if (b"cache-control", b"no-store") in captured.headers:
            return  # an answer of the moment (a long poll): the route says so
        headers = tuple((name, value) for name, value in captured.headers if name not in _VOLATILE)
        route = scope.get("route")
        if self.service.store_response(caller, key, captured.body, reads, headers) and route:
            if len(self._operations) >= MAX_OPERATIONS:
                self._operations.clear()
            self._operations[key[1:]] = route.name


def read_answer_of(stored: StoredResponse, wanted: bytes | None) -> tuple[Message, bytes]:
    """The start and body of an answer with a stored read: 304 and no body when `wanted` (the
    If-None-Match header) matches its ETag, else 200."""
    headers = stored.headers
    if wanted is not None:
        etag = next((value for name, value in headers if name == b"etag"), None)
        if etag is not None and none_match(wanted.decode("latin-1"), etag.decode("latin-1")):
            start = {"type": "http.response.start", "status": 304, "headers": [*headers, _HIT]}
            return start, b""
    body = stored.body
    length = (b"content-length", str(len(body)).encode())
    return {"type": "http.response.start", "status": 200, "headers": [*headers, length, _HIT]}, body


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


async def read_body(receive: Receive, limit: int, message: Message) -> tuple[bytes, bool]:
    """The request body from its first `message` on, read until it ends (complete) or passes
    `limit` or the client leaves (not complete)."""
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
