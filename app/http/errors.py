"""The bodies of error answers, one per face: the REST envelope and GraphQL's `errors`. The
pipeline's own refusals and the REST face's handlers give the same ones."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Message, Scope, Send

from app.auth.messages import WWW_AUTHENTICATE, unauthenticated_message
from app.core.errors import GatewayError, Unauthenticated

_RETRY_AFTER_STATUSES = frozenset({409, 429, 503})


def envelope(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """`{"error": {code, message, details}}`, the one shape of every REST error."""
    body = orjson.dumps({"error": {"code": code, "message": message, "details": details or {}}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def gateway_error_response(error: GatewayError) -> Response:
    """A gateway error as REST answers it."""
    if isinstance(error, Unauthenticated):
        challenge = {"WWW-Authenticate": WWW_AUTHENTICATE}
        return envelope(error.status, error.code, unauthenticated_message(error), headers=challenge)
    headers = None
    if error.retry_after is not None and error.status in _RETRY_AFTER_STATUSES:
        headers = {"Retry-After": str(max(0, math.ceil(error.retry_after)))}
    return envelope(error.status, error.code, error.message, error.details, headers)


def graphql_error_response(error: GatewayError) -> Response:
    """A gateway error that stopped a GraphQL request before execution: `data` null and the
    error with its code in `extensions`, with the status REST would give it."""
    headers: dict[str, str] = {}
    message = error.message
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        message = unauthenticated_message(error)
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    body = {"data": None, "errors": [{"message": message, "extensions": error.extensions}]}
    return Response(
        orjson.dumps(body), status_code=error.status, media_type="application/json", headers=headers
    )


async def refuse(scope: Scope, send: Send, error: GatewayError, graphql: bool) -> None:
    """Answer a request the pipeline refuses, in its face's error shape."""
    response = graphql_error_response(error) if graphql else gateway_error_response(error)
    await response(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
