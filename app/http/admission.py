"""Admission: what a request must pass before any work is done for it. Bodies over the limit
(413), missing or wrong credentials (401; in passthrough mode a key MAAS has not confirmed)
and callers over their rate (429)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Message, Receive, Scope, Send

from app.auth.identity import CallerResolver, Identity, unauthenticated
from app.core.errors import PayloadTooLarge
from app.core.settings import Settings
from app.http.errors import refuse
from app.http.exchange import Exchange

API_PREFIX = "/api/v1"
GRAPHQL_PATH = "/graphql"
# The REST route whose body is an image (app/rest/boot_resources.py upload_boot_resource).
_API_PATHS = API_PREFIX + "/"
UPLOAD_ROUTES = frozenset({("POST", f"{API_PREFIX}/boot-resources")})


class Admission:
    """The checks of `/graphql` and `/api/v1`. The GraphiQL page (GET /graphql without a
    query), the API docs, static files and health or metrics endpoints need no credential."""

    def __init__(
        self, callers: CallerResolver, *, max_request_bytes: int, max_upload_bytes: int
    ) -> None:
        self.callers = callers
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    @classmethod
    def from_settings(cls, settings: Settings, callers: CallerResolver) -> Admission:
        return cls(
            callers,
            max_request_bytes=settings.max_request_bytes,
            max_upload_bytes=settings.max_upload_bytes,
        )

    def body_limit(self, method: str, path: str, head: Exchange) -> int:
        if (method, path) in UPLOAD_ROUTES:
            return self.max_upload_bytes
        if path == GRAPHQL_PATH and head.multipart:
            return self.max_upload_bytes + self.max_request_bytes  # an upload, operations, map
        return self.max_request_bytes

    def check(self, scope: Scope, head: Exchange) -> tuple[int, Identity | None]:
        """The request's body limit and, where a credential is needed, the caller's identity;
        raises PayloadTooLarge or Unauthenticated. The pipeline then counts it (`throttle`)."""
        limit = self.max_request_bytes
        if (head.length is not None and head.length > limit) or head.chunked:
            # Uploads have a limit of their own; most requests are far under both.
            limit = self.body_limit(scope["method"], scope["path"], head)
            if head.length is not None and head.length > limit:
                raise too_large(limit)
        path: str = scope["path"]
        method: str = scope["method"]
        # Every path that needs a credential: GET /graphql without a query (or a persisted
        # document's hash) is the GraphiQL page.
        if method == "OPTIONS" or not (
            (path == GRAPHQL_PATH and (method != "GET" or _has_query(scope)))
            or path == API_PREFIX
            or path.startswith(_API_PATHS)
        ):
            return limit, None
        if head.credentials > 1:
            raise unauthenticated()  # which one was meant? (identity.authorization_of)
        return limit, self.callers.identify_scope(scope, head.authorization)

    async def throttle(self, scope: Scope, identity: Identity) -> None:
        """Count the request against the caller's rate; raises RateLimited when over it."""
        callers = self.callers
        if callers.limiter is not None:
            client = scope.get("client")
            await callers.throttle(identity, client[0] if client else None)


class CountedBody:
    """A body of unknown length (chunked), stopped past `limit`: the request is answered 413
    at once and whatever the app answers to the error it then reads is dropped."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._limit = limit
        self._received = 0
        self._started = False
        self.answered = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                error = too_large(self._limit)
                if not self._started and not self.answered:
                    self.answered = True
                    await refuse(
                        self._scope, self._send, error, self._scope["path"] == GRAPHQL_PATH
                    )
                raise error
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes", details={"limit": limit}
    )


def _has_query(scope: Scope) -> bool:
    """Whether a GET asks for an operation: a document, or a persisted document's hash."""
    query: bytes = scope.get("query_string", b"")
    return (
        query.startswith((b"query=", b"extensions="))
        or b"&query=" in query
        or b"&extensions=" in query
    )


SIGNED_IN_KEY = "maas_gateway.websocket_signed_in"
"""In a websocket's scope: what its handler calls once the socket has signed in."""


class WebSocketAdmission:
    """Caps on websockets that are open but not signed in, per client address and in all: a
    crowd of idle sockets that never send connection_init cannot pile up. A socket stops
    counting once it signs in (SIGNED_IN_KEY) or closes."""

    def __init__(self, *, max_pending: int, max_pending_per_client: int) -> None:
        self.max_pending = max_pending
        self.max_pending_per_client = max_pending_per_client
        self.pending = 0
        self._by_client: dict[str, int] = {}

    def admit(self, scope: Scope) -> Callable[[], None] | None:
        """A release to call when the socket signs in or closes (idempotent), or None when a
        cap is reached and the handshake is to be refused."""
        client = scope.get("client")
        address = client[0] if client else ""
        if (
            self.pending >= self.max_pending
            or self._by_client.get(address, 0) >= self.max_pending_per_client
        ):
            return None
        self.pending += 1
        self._by_client[address] = self._by_client.get(address, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.pending -= 1
            left = self._by_client[address] - 1
            if left:
                self._by_client[address] = left
            else:
                del self._by_client[address]

        scope[SIGNED_IN_KEY] = release
        return release
