"""The gateway's one error hierarchy: every failure maps to a stable code and an HTTP status."""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.retry_after = retry_after

    @property
    def extensions(self) -> dict[str, Any]:
        """What GraphQL reports; graphql-core copies an original error's `extensions` dict."""
        extensions = {"code": self.code, **self.details}
        if self.retry_after is not None:
            extensions["retryAfter"] = self.retry_after
        return extensions

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class NotFound(GatewayError):
    code = "NOT_FOUND"
    status = 404


class ValidationFailed(GatewayError):
    """Bad input; `details["fields"]` maps a field name to its messages (MAAS's `__all__` kept)."""

    code = "VALIDATION"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        merged = dict(details or {})
        if fields:
            merged["fields"] = fields
        super().__init__(message, details=merged)
        self.fields: dict[str, list[str]] = fields or {}


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(GatewayError):
    code = "FORBIDDEN"
    status = 403


class Conflict(GatewayError):
    code = "CONFLICT"
    status = 409


class PayloadTooLarge(GatewayError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class RateLimited(GatewayError):
    code = "RATE_LIMITED"
    status = 429


class UpstreamBadResponse(GatewayError):
    """MAAS answered with something the gateway cannot use (5xx, malformed body, dropped body)."""

    code = "UPSTREAM_BAD_RESPONSE"
    status = 502


class UpstreamUnavailable(GatewayError):
    code = "UPSTREAM_UNAVAILABLE"
    status = 503


class UpstreamTimeout(GatewayError):
    code = "UPSTREAM_TIMEOUT"
    status = 504


class ImportStalled(GatewayError):
    """MAAS answers, but the images waited for stopped making progress."""

    code = "IMPORT_STALLED"
    status = 504


ALL_ERRORS: tuple[type[GatewayError], ...] = (
    NotFound,
    ValidationFailed,
    Unauthenticated,
    Forbidden,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    UpstreamBadResponse,
    UpstreamUnavailable,
    ImportStalled,
    UpstreamTimeout,  # after ImportStalled: a bare 504 is an upstream timeout
)
