"""The REST error envelope: every failure becomes `{"error": {code, message, details}}`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match

from app.core.errors import ALL_ERRORS, GatewayError, ValidationFailed
from app.http.errors import envelope, gateway_error_response

# Codes for statuses the framework itself produces; the rest come from app.errors.
_HTTP_CODES: dict[int, str] = {error.status: error.code for error in ALL_ERRORS}
_HTTP_CODES[405] = "METHOD_NOT_ALLOWED"


class ErrorBody(BaseModel):
    code: str = Field(
        description="Stable error code: NOT_FOUND, VALIDATION, UNAUTHENTICATED, FORBIDDEN, "
        "CONFLICT, PAYLOAD_TOO_LARGE, RATE_LIMITED, UPSTREAM_BAD_RESPONSE, "
        "UPSTREAM_UNAVAILABLE, UPSTREAM_TIMEOUT, METHOD_NOT_ALLOWED or INTERNAL.",
        examples=["VALIDATION"],
    )
    message: str = Field(description="What went wrong, for people.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Machine-readable context; VALIDATION errors carry `fields`: "
        "field name → messages (MAAS's `__all__` for errors of the whole object).",
    )


class ErrorEnvelope(BaseModel):
    """The one shape of every REST error."""

    error: ErrorBody


_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request or MAAS rejected the input (code VALIDATION, `details.fields`).",
    401: "Missing or invalid credentials (a gateway token, or a MAAS API key in passthrough "
    "mode), or MAAS did not accept the key.",
    403: "The credential lacks the scope for this, or MAAS does not allow it.",
    404: "No such object (or route).",
    409: "MAAS reported a conflicting concurrent change; retry after `Retry-After`.",
    413: "The request asks for too much work or too large an upload.",
    429: "Rate limited; retry after `Retry-After`.",
    502: "MAAS answered with something unusable or dropped the connection.",
    503: "MAAS is unreachable; `Retry-After` when known.",
    504: "MAAS did not answer in time.",
}

COMMON_ERRORS = (400, 401, 403, 409, 429, 502, 503, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the envelope for `statuses` (plus any other error)."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[status]}
        for status in sorted(set(statuses))
    }
    # "default" also stops FastAPI adding its own 422 schema: request validation is a 400 here.
    responses["default"] = {"model": ErrorEnvelope, "description": "Any other error."}
    return responses


def _field_name(loc: tuple[int | str, ...]) -> str:
    # ("query", "size") → "size"; ("body", "arches", 0) → "arches.0"; a whole bad body → "body".
    parts = loc[1:] if len(loc) > 1 and loc[0] in ("path", "query", "header", "body") else loc
    return ".".join(str(part) for part in parts) or "body"


def validation_failed(exc: RequestValidationError) -> ValidationFailed:
    fields: dict[str, list[str]] = {}
    for problem in exc.errors():
        fields.setdefault(_field_name(tuple(problem.get("loc", ()))), []).append(
            str(problem.get("msg", "invalid"))
        )
    summary = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
    return ValidationFailed(f"invalid request: {summary}", fields=fields)


async def _on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return gateway_error_response(exc)


async def _on_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return gateway_error_response(validation_failed(exc))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, ClientDisconnect):
        # FastAPI makes any failure to read a body a 400, the client's leaving included.
        return await _on_client_gone(request, exc.__cause__)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "INTERNAL" if status >= 500 else f"HTTP_{status}")
    if status == 404 and exc.detail == HTTPStatus.NOT_FOUND.phrase:
        message = f"no route {request.url.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        return envelope(status, code, message, headers={"Allow": _allowed(request)})
    else:
        message = str(exc.detail)
    if status in (204, 304):
        return Response(status_code=status, headers=exc.headers)
    return envelope(status, code, message, headers=exc.headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed(request: Request) -> str:
    # Starlette's 405 names only the first route of the path, and a path here has one route
    # per method: ask the router which methods would fully match instead.
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this, so the server logs the traceback; callers never see
    # internals (docs/architecture.md, "Errors").
    return envelope(500, "INTERNAL", "internal error")


CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a client that left before it was answered: no server fault."""


async def _on_client_gone(request: Request, exc: Exception) -> Response:
    # Nobody is there to read an answer; the status tells the access line and the metrics
    # what happened, apart from 5xx, and no traceback is logged.
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of the app (REST routes, unknown routes, 405s) as the envelope; a
    client that leaves mid-request is a 499, never a 500."""
    app.add_exception_handler(ClientDisconnect, _on_client_gone)
    app.add_exception_handler(GatewayError, _on_gateway_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
