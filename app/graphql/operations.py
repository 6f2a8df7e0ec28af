"""What a GraphQL request asks for: the operation it runs (HTTP and WebSocket alike), and, read
once for stored answers, its document, variables and operation, the key they are stored under,
and whether the operation is a query."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, Protocol
from urllib.parse import parse_qs

import orjson
from cross_web import HTTPException
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)

from app.graphql.telemetry import INVALID, operation_label, selected_operation
from app.http.stored_answers import Target
from app.service import BootService

MAX_REMEMBERED = 1024
MAX_REMEMBERED_REQUEST = 8 * 1024
_UNKNOWN = object()


class KnownDocuments(Protocol):
    """Persisted documents as the stored-answer path sees them (app/graphql/persisted.py)."""

    def known(self, extensions: object) -> str | None: ...


class RequestError(HTTPException):
    """A request the GraphQL face refuses before it runs: its status (and, when it differs,
    the status under application/json, where GraphQL over HTTP answers document-level errors
    with 200), its `extensions.code`, and the headers the answer needs."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        code: str = "BAD_REQUEST",
        headers: dict[str, str] | None = None,
        legacy_status: int | None = None,
    ) -> None:
        super().__init__(status, reason)
        self.code = code
        self.headers = headers
        self.legacy_status = status if legacy_status is None else legacy_status


class UnchosenOperation(Exception):
    """The request does not single out an operation of its document: a request error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def operation_to_run(
    query: object, name: str | None, parse: Callable[[str], DocumentNode]
) -> OperationDefinitionNode | None:
    """The operation a request runs, or None when the normal path reports the problem (no
    document, a syntax error, a document with no operation). Raises UnchosenOperation for many
    operations and no name, or a name the document lacks: strawberry would run the first."""
    if not isinstance(query, str):
        return None
    try:
        # The schema's own parse: token-limited and remembered, so the execution that follows
        # does not parse again, and a long document costs no more here than there.
        document = parse(query)
    except GraphQLError:
        return None
    operation = get_operation_ast(document, name)
    if operation is not None:
        return operation
    if name is not None:
        raise UnchosenOperation(f"Unknown operation named '{name}'.")
    if any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
        raise UnchosenOperation(
            "Must provide operation name if query contains multiple operations."
        )
    return None


class OperationTargets:
    """Reads requests for the pipeline's stored answers (`app.http.stored_answers`), with the
    schema's own parse: one token-limited, remembered parse a document."""

    def __init__(
        self,
        service: BootService,
        parse: Callable[[str], DocumentNode],
        persisted: KnownDocuments | None = None,
    ) -> None:
        self.service = service
        self.parse = parse
        self.persisted = persisted
        self._known: dict[bytes, Target | None] = {}

    def __call__(self, raw: bytes, method: str) -> Target | None:
        """What a request asks for, remembered by its exact bytes: a repeated request skips
        JSON parsing and hashing (the common case on the hit path). `raw` is a POST's body, or
        `?` and a GET's query string."""
        known = self._known.get(raw, _UNKNOWN)
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
        request = _json_object(raw) if method == "POST" else _query_params_of(raw[1:])
        document = request.get("query") if request else None
        variables = request.get("variables") if request else None
        operation = request.get("operationName") if request else None
        extensions = request.get("extensions") if request else None
        if document is None and extensions is not None and self.persisted is not None:
            # A persisted document's hash alone: answered as its text is, when known here.
            document = self.persisted.known(extensions)
        target = None
        # Anything malformed goes on to the app, which says what is wrong with it.
        if (
            isinstance(document, str)
            and isinstance(variables, dict | None)
            and isinstance(operation, str | None)
            and isinstance(extensions, dict | None)
            # A caller asking for the estimate (app/graphql/authorization.py) gets it fresh.
            and not (extensions and extensions.get("cost") is True)
        ):
            target = self._target(document, variables, operation)
        if len(raw) <= MAX_REMEMBERED_REQUEST and (target is not None or document is not None):
            if len(self._known) >= MAX_REMEMBERED:
                self._known.clear()
            self._known[raw] = target
        return target

    def _target(
        self, document: str, variables: dict[str, Any] | None, operation: str | None
    ) -> Target:
        key = self.service.response_key(document, variables, operation)
        try:
            parsed = self.parse(document)
        except GraphQLError:
            return Target(key=key, query=False, operation=INVALID)
        selected = selected_operation(parsed, operation)
        query = selected is not None and selected.operation is OperationType.QUERY
        return Target(key=key, query=query, operation=operation_label(parsed, operation))


def _json_object(body: bytes) -> MutableMapping[str, Any] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _query_params_of(query_string: bytes) -> MutableMapping[str, Any] | None:
    params = parse_qs(query_string.decode("latin-1"))
    if "query" not in params and "extensions" not in params:
        return None
    request: dict[str, Any] = {"query": params["query"][0]} if "query" in params else {}
    if "operationName" in params:
        request["operationName"] = params["operationName"][0]
    for name in ("variables", "extensions"):
        if name in params:
            try:
                request[name] = orjson.loads(params[name][0])
            except orjson.JSONDecodeError:
                return None
    return request
