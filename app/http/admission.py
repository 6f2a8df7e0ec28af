"""The ASGI layer in front of both faces: CORS, body limits, authentication and rate limits."""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.callers import CallerResolver, Identity, unauthenticated
from app.config import Settings
from app.errors import GatewayError, PayloadTooLarge, Unauthenticated
from app.rest.errors import gateway_error_response
from app.rest.uploads import SHA256_HEADER
from app.security import WWW_AUTHENTICATE

API_PREFIX = "/api/v1"
# Set on the ASGI scope once the caller is identified and counted against its rate.
ADMITTED_KEY = "maas_gateway.admitted"
GRAPHQL_PATH = "/graphql"
# The REST route whose body is an image (app/rest/boot_resources.py upload_boot_resource).
UPLOAD_ROUTES = frozenset({("POST", f"{API_PREFIX}/boot-resources")})
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "Apollo-Require-Preflight",
    "X-Apollo-Operation-Name",
    "GraphQL-Preflight",
    "X-Request-ID",
    SHA256_HEADER,
]
CORS_EXPOSED = ["Retry-After", "X-Cache", "Location", "X-Request-ID", "Cache-Control"]


def with_cors(app: ASGIApp, settings: Settings) -> ASGIApp:
    """CORS around the gateway's HTTP entry point when origins are configured: outermost, so
    that even the gate's own rejections and stored answers carry the CORS headers."""
    if not settings.cors_origin_list:
        return app
    return CORSMiddleware(
        app,
        allow_origins=list(settings.cors_origin_list),
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSED,
        # Credentials are bearer headers, never cookies: nothing ambient to allow.
        allow_credentials=False,
        max_age=600,
    )


class RequestGate:
    """Rejects before any work is done: bodies over the limit (413), missing or wrong
    credentials (401, and in passthrough mode a GraphQL caller's key MAAS refuses) and callers
    over their rate (429), for /graphql and /api/v1.

    The GraphiQL page (GET /graphql without a query), the API docs, static files and
    health or metrics endpoints need no credential.
    """

    def __init__(
        self,
        app: ASGIApp,
        callers: CallerResolver,
        *,
        max_request_bytes: int,
        max_upload_bytes: int,
    ) -> None:
        self.app = app
        self.callers = callers
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    @classmethod
    def from_settings(
        cls, app: ASGIApp, settings: Settings, callers: CallerResolver
    ) -> RequestGate:
        return cls(
            app,
            callers,
            max_request_bytes=settings.max_request_bytes,
            max_upload_bytes=settings.max_upload_bytes,
        )

    def admit(self, scope: Scope, authorization: bytes | None = None) -> Identity:
        """Identify the caller and count the request against its rate, once per request (the
        front door may have done it already); raises Unauthenticated or RateLimited."""
        identity = self.callers.identify_scope(scope, authorization)
        if self.callers.limiter is not None and not scope.get(ADMITTED_KEY):
            client = scope.get("client")
            self.callers.throttle(identity, client[0] if client else None)
        scope[ADMITTED_KEY] = True
        return identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        # One pass over the headers: this runs before every response-cache hit.
        length: int | None = None
        multipart = False
        authorization: bytes | None = None
        credentials = 0
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name == b"content-type":
                multipart = value[:19].lower() == b"multipart/form-data"
            elif name == b"authorization":
                authorization = value
                credentials += 1
        graphql = path == GRAPHQL_PATH
        if (method, path) in UPLOAD_ROUTES:
            limit = self.max_upload_bytes
        elif graphql and multipart:
            # An upload plus its operations and map fields.
            limit = self.max_upload_bytes + self.max_request_bytes
        else:
            limit = self.max_request_bytes
        if length is not None and length > limit:
            await _reject(scope, send, _too_large(limit), graphql)
            return
        if (graphql or path == API_PREFIX or path.startswith(API_PREFIX + "/")) and not (
            method == "OPTIONS" or (graphql and method == "GET" and not _has_query(scope))
        ):
            try:
                if credentials > 1:
                    raise unauthenticated()  # which one was meant? (callers.authorization_of)
                identity = self.admit(scope, authorization)
                if graphql:
                    # Before the document is parsed: a made-up key must cost nothing more.
                    await self.callers.confirm(identity)
            except GatewayError as error:
                await _reject(scope, send, error, graphql)
                return
        if length is not None:
            # The server stops a body at its declared length; nothing more to count.
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit, graphql)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, limit: int, graphql: bool
    ) -> None:
        """Pass a body of unknown length (chunked) through, stopping it past `limit`: the gate
        answers 413 at once and drops whatever the app answers to the error it then reads."""
        received = 0
        started = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    error = _too_large(limit)
                    if not started and not answered:
                        answered = True
                        await _reject(scope, send, error, graphql)
                    raise error
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLarge:
            if not answered:
                raise


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes", details={"limit": limit}
    )


def _has_query(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return query.startswith(b"query=") or b"&query=" in query


async def _reject(scope: Scope, send: Send, error: GatewayError, graphql: bool) -> None:
    """Answer with the face's own error shape: GraphQL `errors`, or the REST envelope."""
    headers: dict[str, str] = {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    if graphql:
        if error.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        body: dict[str, Any] = {
            "data": None,
            "errors": [{"message": error.message, "extensions": error.extensions}],
        }
        await _send(send, error.status, orjson.dumps(body), headers)
        return
    response = gateway_error_response(error)
    response.headers.update(headers)
    await response(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


async def _send(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
