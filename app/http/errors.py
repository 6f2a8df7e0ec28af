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
from app.http.media import JSON, graphql_media_type

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


def graphql_error_response(error: GatewayError, media_type: str = JSON) -> Response:
    """A gateway error that stopped a GraphQL request before execution: the error with its code
    in `extensions` and no `data` (nothing ran), with the status REST would give it, in the
    media type the client asked for (app/http/media.py)."""
    headers: dict[str, str] = {}
    message = error.message
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        message = unauthenticated_message(error)
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return graphql_request_error(error.status, message, error.extensions, media_type, headers)


def graphql_request_error(
    status: int,
    message: str,
    extensions: Mapping[str, Any],
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A GraphQL request error: `{"errors": [...]}` with no `data` entry."""
    body = orjson.dumps({"errors": [{"message": message, "extensions": extensions}]})
    return Response(body, status_code=status, media_type=media_type, headers=headers)


async def refuse(scope: Scope, send: Send, error: GatewayError, graphql: bool) -> None:
    """Answer a request the pipeline refuses, in its face's error shape."""
    if graphql:
        accept = next((value for name, value in scope["headers"] if name == b"accept"), None)
        response = graphql_error_response(error, graphql_media_type(accept))
    else:
        response = gateway_error_response(error)
    await response(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
