"""Answers a repeated REST read from stored bytes before routing, ETag and 304 included."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.callers import CallerResolver
from app.observability import note_cache, note_operation
from app.rest.responses import none_match
from app.service import BootService, StoredResponse
from app.stored_answers import MISSED_KEY, Captured, reader

# Headers a stored answer does not keep: the edge writes its own on every answer.
_VOLATILE = frozenset({b"x-cache", b"content-length", b"date", b"server", b"x-request-id"})
# Route names remembered for the operation label of stored answers, bounded.
MAX_OPERATIONS = 4096


class StoredReads:
    """ASGI middleware for `GET /api/v1/...` (DESIGN.md, "Performance model": a repeated read
    skips routing, the service and JSON encoding). What a stored answer depends on is tracked
    like the GraphQL response cache's, so a write makes it miss."""

    def __init__(
        self, app: ASGIApp, *, service: BootService, callers: CallerResolver, prefix: str
    ) -> None:
        self.app = app
        self.service = service
        self.callers = callers
        self.prefix = prefix
        self._operations: dict[tuple[str, bytes], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefix)
            or self.service.responses is None
        ):
            await self.app(scope, receive, send)
            return
        caller = reader(self.callers, scope)
        if caller is None:
            await self.app(scope, receive, send)
            return
        key = self.key(scope)
        stored = None if scope.get(MISSED_KEY) else self.service.stored_response(caller, key)
        if stored is not None:
            note_operation(self.operation(key))
            note_cache("HIT")
            start, body = stored_answer(stored, if_none_match(scope))
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        captured = Captured(send)
        with self.service.track_dependencies() as reads:
            await self.app(scope, receive, captured)
        if captured.status == 200 and captured.complete:
            stored_headers = tuple(
                (name, value) for name, value in captured.headers if name not in _VOLATILE
            )
            if self.service.store_response(caller, key, captured.body, reads, stored_headers):
                route = scope.get("route")
                if route is not None:
                    if len(self._operations) >= MAX_OPERATIONS:
                        self._operations.clear()
                    self._operations[key[1:]] = route.name

    @staticmethod
    def key(scope: Scope) -> tuple[str, str, bytes]:
        """What a stored read is kept under: the path and the exact query string."""
        return ("rest", scope["path"], scope.get("query_string", b""))

    def operation(self, key: tuple[str, str, bytes]) -> str:
        """The route name metrics and logs give a stored answer for `key`."""
        return self._operations.get(key[1:], "unrouted")


def if_none_match(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return value  # type: ignore[no-any-return]
    return None


def stored_answer(
    stored: StoredResponse, wanted: bytes | None, *extra: tuple[bytes, bytes]
) -> tuple[Message, bytes]:
    """The start and body of an answer with a stored read: 304 and no body when `wanted` (the
    If-None-Match header) matches its ETag, else 200; `extra` headers are added (the request
    id)."""
    headers = stored.headers
    if wanted is not None:
        etag = next((value for name, value in headers if name == b"etag"), None)
        if etag is not None and none_match(wanted.decode("latin-1"), etag.decode("latin-1")):
            start = {
                "type": "http.response.start",
                "status": 304,
                "headers": [*headers, (b"x-cache", b"HIT"), *extra],
            }
            return start, b""
    body = stored.body
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            *headers,
            (b"content-length", str(len(body)).encode()),
            (b"x-cache", b"HIT"),
            *extra,
        ],
    }
    return start, body
