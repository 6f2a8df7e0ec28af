"""Request-scoped observability state shared by every layer: the request id sent upstream and
the record of what one request did, filled in along the way for its metrics and log line."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

REQUEST_ID_HEADER = "X-Request-ID"


@dataclass(slots=True)
class RequestRecord:
    """One HTTP request as its log line and metrics describe it; the layers it crosses fill in
    what only they know (the operation, upstream calls, the cache outcome)."""

    request_id: str
    operation: str | None = None
    cache: str | None = None
    upstream_calls: int = 0
    errors: tuple[str, ...] = ()
    """GraphQL error codes of the response."""
    uploaded_bytes: int = 0
    """Image bytes this request uploaded to MAAS."""


current_request: ContextVar[RequestRecord | None] = ContextVar("current_request", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, sent upstream and put on every log line."""
    record = current_request.get()
    return record.request_id if record is not None else None


def note_operation(operation: str) -> None:
    """Record the operation the current request performed, as metrics and logs label it."""
    record = current_request.get()
    if record is not None:
        record.operation = operation


def note_upload(size: int) -> None:
    """Record the image bytes the current request uploaded to MAAS."""
    record = current_request.get()
    if record is not None:
        record.uploaded_bytes += size


def note_cache(outcome: str) -> None:
    """Record where the current request's data came from (HIT, MISS, STALE, COALESCED)."""
    record = current_request.get()
    if record is not None:
        record.cache = outcome
