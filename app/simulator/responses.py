"""MAAS-shaped responses: the piston emitter, text bodies and the errors regiond answers with."""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.simulator.config import MaasVersion

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
# piston's rc.* helpers and Django's Http404 handler set exactly "text/plain".
BARE_TEXT = "text/plain"
# Django's default for a bare HttpResponse.
HTML = "text/html; charset=utf-8"

# maasserver/templates/409.html, rendered for retryable database failures (maas-api.md §4.2).
CONFLICT_HTML = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
    '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
    "  <head>\n    <title>Error: Conflict Error</title>\n  </head>\n  <body>\n    <h2>\n"
    "      Conflict error. Try your request again, as it will most likely succeed.\n"
    "    </h2>\n  </body>\n</html>\n"
)


@dataclass(slots=True)
class Response:
    """One HTTP answer; `api` marks piston-resource answers, which carry the describe hash."""

    status: int
    body: bytes = b""
    content_type: str | None = TEXT
    headers: list[tuple[str, str]] = field(default_factory=list)
    api: bool = False


def emit(obj: Any, status: int = 200) -> Response:
    """Piston's JSON emitter; the byte layout differs from MAAS's indent=4, the type does not."""
    return Response(status, orjson.dumps(obj), JSON, api=True)


def text(body: str, status: int = 200, content_type: str = TEXT, *, api: bool = False) -> Response:
    return Response(status, body.encode("utf-8"), content_type, api=api)


def nginx_page(status: int, reason: str) -> Response:
    """The HTML error page nginx (in front of regiond) writes itself."""
    title = f"{status} {reason}"
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx/1.18.0 (Ubuntu)</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Response(status, body.encode("ascii"), "text/html")


def conflict() -> Response:
    return Response(409, CONFLICT_HTML.encode("utf-8"), HTML, [("Retry-After", "5")])


class MAASError(Exception, abc.ABC):
    """An error regiond turns into a response; subclasses mirror where MAAS produces it."""

    @abc.abstractmethod
    def to_response(self, version: MaasVersion) -> Response:
        """The answer MAAS gives for this error, as the version at hand words it."""


class BadRequest(MAASError):
    """MAASAPIBadRequest: 400 text/plain, rendered by the exception middleware."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_response(self, version: MaasVersion) -> Response:
        return text(self.message, 400)


class Forbidden(MAASError):
    """PermissionDenied / MAASAPIForbidden: 403 text/plain (maas-api.md §4.4)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_response(self, version: MaasVersion) -> Response:
        return text(self.message, 403)


class PistonBadRequest(MAASError):
    """piston's rc.BAD_REQUEST, for a body its Mimer cannot load (maas-api.md §3)."""

    def to_response(self, version: MaasVersion) -> Response:
        return text("Bad Request", 400, BARE_TEXT, api=True)


class ServerError(MAASError):
    """An unhandled exception: the middleware answers 500 with `str(exc)` (maas-api.md §4.2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_response(self, version: MaasVersion) -> Response:
        return text(self.message, 500)


class FormErrors(MAASError):
    """MAASAPIValidationError(form.errors): a JSON map of field to messages (maas-api.md §4.3)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors

    def to_response(self, version: MaasVersion) -> Response:
        return Response(400, json.dumps(self.errors).encode("utf-8"), JSON)


class ModelValidationError(MAASError):
    """A Django ValidationError raised while saving or deleting a model (maas-api.md §4.3).

    With a message dict it is JSON typed exactly `application/json`; otherwise plain text.
    """

    def __init__(self, message: str | dict[str, list[str]]) -> None:
        super().__init__(message)
        self.message = message

    def to_response(self, version: MaasVersion) -> Response:
        if isinstance(self.message, dict):
            return Response(400, json.dumps(self.message).encode("utf-8"), "application/json")
        return text(self.message, 400)


class NotFound(MAASError):
    """Http404 from get_object_or_404, answered by the resource's own error handler."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.model = model

    def to_response(self, version: MaasVersion) -> Response:
        if version.detailed_not_found:
            return text(f"No {self.model} matches the given query.", 404, BARE_TEXT, api=True)
        return text("Not Found", 404, BARE_TEXT, api=True)


class UnknownEndpoint(MAASError):
    """The API catch-all: MAASAPINotFound (maas-api.md §1)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    def to_response(self, version: MaasVersion) -> Response:
        return text(f"Unknown API endpoint: {self.path}.", 404)


class MethodNotAllowed(MAASError):
    """Piston's HttpResponseNotAllowed: 405, an `Allow` header and an empty HTML-typed body."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__(allowed)
        self.allowed = allowed

    def to_response(self, version: MaasVersion) -> Response:
        return Response(405, b"", HTML, [("Allow", ", ".join(self.allowed))], api=True)


class Challenge(MAASError):
    """No credentials: piston's rc.FORBIDDEN, which is a 401 whose body says `Forbidden`."""

    def to_response(self, version: MaasVersion) -> Response:
        return text("Forbidden", 401, BARE_TEXT, api=True)


class OAuthUnauthorized(MAASError):
    """An OAuth check failed: piston's send_oauth_error (maas-api.md §2.3)."""

    def __init__(self, oauth_message: str) -> None:
        super().__init__(oauth_message)
        if oauth_message == "Invalid consumer.":
            self.message = "Authorization Error: Invalid API key."
        else:
            self.message = f"Authorization Error: {oauth_message!r}"

    def to_response(self, version: MaasVersion) -> Response:
        return Response(
            401, self.message.encode("utf-8"), HTML, [("WWW-Authenticate", 'OAuth realm="OAuth"')]
        )


class OAuthBadRequest(MAASError):
    """3.8's answer to a malformed oauth_timestamp; MAAS renders the message's repr."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.message = f"Bad Request: {problem}"

    def to_response(self, version: MaasVersion) -> Response:
        return text(repr(self.message), 400)


class BodyTooLarge(MAASError):
    """nginx's `client_max_body_size 10M` refusal, before regiond sees the request."""

    def to_response(self, version: MaasVersion) -> Response:
        return nginx_page(413, "Request Entity Too Large")
