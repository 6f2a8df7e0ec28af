"""Request-scoped observability state shared by every layer (the request id sent upstream)."""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
