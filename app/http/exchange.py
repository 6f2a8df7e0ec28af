"""One HTTP request as the pipeline follows it: its head, read once; the record the layers
below fill in; and the server's `send`, seen through by telemetry."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from contextvars import Token

from opentelemetry.context import Context
from opentelemetry.trace import Span
from starlette.types import Message, Scope, Send

from app.observability.context import RequestRecord


class Exchange(RequestRecord):
    """Every step asks this object, and none scans the headers again: a header given twice
    counts as its first value (two credentials are refused). One object a request, because on
    a stored answer the pipeline's own allocations are a fair part of what it costs.

    As `send`, it notes the status and X-Cache and adds X-Request-ID, returning the server's
    own awaitable, so passing a message costs no coroutine of its own."""

    __slots__ = (
        "api",
        "authorization",
        "cache_header",
        "chunked",
        "credentials",
        "headers",
        "id_header",
        "json",
        "length",
        "send",
        "span",
        "span_token",
        "started",
        "status",
    )

    id_header: tuple[bytes, bytes]
    """X-Request-ID with the request's id, set by Telemetry.begin."""

    def __init__(self, scope: Scope, send: Send, api: str) -> None:
        listed = scope["headers"]
        headers = dict(listed)  # one pass, in C
        self.credentials = int(b"authorization" in headers)
        if len(headers) != len(listed):
            headers = dict(reversed(listed))
            self.credentials = sum(1 for name, _ in listed if name == b"authorization")
        self.headers = headers
        self.authorization = headers.get(b"authorization")
        length = headers.get(b"content-length")
        self.length = int(length) if length is not None and length.isdigit() else None
        # Whether a body of unknown length may follow (Transfer-Encoding, no Content-Length).
        self.chunked = self.length is None and b"transfer-encoding" in headers
        content_type = headers.get(b"content-type")
        # The common spelling first: this runs before every stored GraphQL answer.
        self.json = content_type == b"application/json" or (
            content_type is not None and _is_json(content_type)
        )
        self.send = send
        self.api = api
        self.status = 500  # unless a response starts, the server answers 500
        self.cache_header: bytes | None = None
        self.span: Span | None = None
        self.span_token: Token[Context] | None = None
        # The record's fields (RequestRecord), set here rather than by its __init__: one call
        # less on every request.
        self.operation = self.cache = None
        self.upstream_calls = self.uploaded_bytes = 0
        self.errors = ()
        self.started = time.perf_counter()

    @property
    def multipart(self) -> bool:
        value = self.headers.get(b"content-type")
        return value is not None and value[:19].lower() == b"multipart/form-data"

    def __call__(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = message.get("headers", ())
            for name, value in headers:
                if name == b"x-cache":
                    self.cache_header = value
            if isinstance(headers, list):
                headers.append(self.id_header)  # a message's own list, as Starlette's middleware
            else:
                message["headers"] = [*headers, self.id_header]
        return self.send(message)


def _is_json(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"
