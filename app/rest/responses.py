"""JSON responses from pre-encoded bytes with HTTP caching headers (ETag/304, Cache-Control)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.http.stored_answers import none_match
from app.rest.schemas import dumps
from app.service import CacheOutcome, Family, ReadLog

JSON = "application/json"


def etag_of(body: bytes) -> str:
    """A strong validator: the body is the exact bytes every matching answer would carry."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def json_read(
    request: Request, payload: Any, families: Iterable[Family], reads: ReadLog
) -> Response:
    """A GET answer: 200 with the body, or 304 when the client already holds these bytes."""
    body = dumps(payload)
    service = request.app.state.service
    ttl = min(service.ttl(f) for f in families)
    etag = etag_of(body)
    headers = {
        "ETag": etag,
        # Private: answers depend on the credential that signs upstream (docs/architecture.md,
        # "Caching").
        "Cache-Control": f"private, max-age={int(ttl)}",
        "Vary": "Authorization",
    }
    outcome = reads.outcome
    if outcome is not None:
        headers["X-Cache"] = (
            outcome.value if outcome is not CacheOutcome.COALESCED else CacheOutcome.MISS.value
        )
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON, headers=headers)


def json_write(payload: Any, status: int = 200, *, location: str | None = None) -> Response:
    headers = {"Location": location} if location else None
    return Response(dumps(payload), status_code=status, media_type=JSON, headers=headers)
