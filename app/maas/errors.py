"""Map every MAAS failure (an httpx error, an error response, a bad body) to an app.errors type."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterable

import httpx
import orjson
import pydantic

from app.core.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationFailed,
)

MAX_MESSAGE_CHARS = 500
REDACTED = "[redacted]"

_STATUS_ERRORS: dict[int, type[GatewayError]] = {
    400: ValidationFailed,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: UpstreamUnavailable,
    504: UpstreamTimeout,
}

Failure = httpx.Response | BaseException


def map_failure(operation: str, failure: Failure, *, redact: Iterable[str] = ()) -> GatewayError:
    """The gateway error for one failed MAAS call.

    `operation` names the call ("boot-resources read") instead of its URL; every value in
    `redact` (credentials, the upstream origin) is scrubbed from text taken from MAAS.
    """
    secrets = tuple(s for s in redact if s)
    if isinstance(failure, httpx.Response):
        return _from_response(operation, failure, secrets)
    return _from_exception(operation, failure, secrets)


def _from_exception(operation: str, exc: BaseException, secrets: tuple[str, ...]) -> GatewayError:
    # Transport messages carry host and port (aiohttp's do), so only a fixed phrase is shown;
    # the original stays chained as __cause__ for the operator's logs.
    prefix = f"MAAS {operation} failed"
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "timed out connecting",
            httpx.ReadTimeout: "timed out waiting for the response",
            httpx.WriteTimeout: "timed out sending the request",
            httpx.PoolTimeout: "timed out waiting for a free connection",
        }.get(type(exc), "timed out")
        return UpstreamTimeout(f"{prefix}: {what}")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return UpstreamBadResponse(f"{prefix}: the connection dropped before a complete response")
    if isinstance(exc, httpx.DecodingError):
        return UpstreamBadResponse(f"{prefix}: the response body could not be decoded")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamUnavailable(f"{prefix}: could not connect")
    if isinstance(exc, httpx.HTTPError):
        return UpstreamUnavailable(f"{prefix}: the connection failed")
    if isinstance(exc, pydantic.ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)[:5]
        )
        return UpstreamBadResponse(f"{prefix}: unexpected payload ({_clean(problems, secrets)})")
    if isinstance(exc, ValueError):  # orjson.JSONDecodeError, UnicodeDecodeError
        return UpstreamBadResponse(f"{prefix}: malformed response body")
    return UpstreamUnavailable(f"{prefix}: {type(exc).__name__}")


def _from_response(
    operation: str, response: httpx.Response, secrets: tuple[str, ...]
) -> GatewayError:
    status = response.status_code
    message, fields = _read_body(response, secrets)
    text = f"MAAS {operation} failed (HTTP {status})"
    if message:
        text = f"{text}: {message}"
    details = {"upstream_status": status}
    error_type = _STATUS_ERRORS.get(status, UpstreamBadResponse)
    if error_type is ValidationFailed:
        return ValidationFailed(text, fields=fields, details=details)
    error = error_type(text, details=details)
    if error_type in (Conflict, RateLimited, UpstreamUnavailable):
        # MAAS's 409 carries Retry-After: 5 (maas-api.md §4.2, §9.19).
        error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return error


def _read_body(
    response: httpx.Response, secrets: tuple[str, ...]
) -> tuple[str, dict[str, list[str]] | None]:
    """A message, plus a field map when MAAS sent form errors (maas-api.md §4.3, §9.7)."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    body = response.content
    if content_type.endswith(("/json", "+json")):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _clean(_decode(body), secrets), None
        if isinstance(data, dict):
            fields = {str(k): [_clean(m, secrets) for m in _messages(v)] for k, v in data.items()}
            summary = "; ".join(
                " ".join(msgs) if name == "__all__" else f"{name}: {' '.join(msgs)}"
                for name, msgs in fields.items()
            )
            return _truncate(summary), fields
        return _clean("; ".join(_messages(data)), secrets), None
    text = _decode(body).strip()
    if content_type in ("text/html", "application/xhtml+xml") and text.startswith("<"):
        # MAAS's 409 page and proxies' error pages are HTML: nothing a caller can use.
        return "", None
    return _clean(text, secrets), None


def _messages(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _decode(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _clean(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return _truncate(" ".join(text.split()))


def _truncate(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 1] + "…"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
