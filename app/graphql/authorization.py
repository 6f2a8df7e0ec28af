"""Per-operation authorization: queries and subscriptions need `read`, mutations `write`."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.auth.identity import unauthenticated
from app.core.errors import Forbidden, GatewayError
from app.core.permissions import Permission

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


class Authorize(SchemaExtension):
    """Checks the caller against the operation once it is parsed and valid, over HTTP and
    websockets alike, before anything runs; a refusal is a FORBIDDEN (or UNAUTHENTICATED,
    RATE_LIMITED) error and, over HTTP, the matching status."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        try:
            identity = context.identity
            if identity is None:
                raise unauthenticated()
            if context.throttle is not None:
                context.throttle()
            operation = self.execution_context.operation_type
            identity.require(
                Permission.WRITE if operation is OperationType.MUTATION else Permission.READ
            )
            if (
                not context.introspection
                and not identity.allows(Permission.ADMIN)
                and _introspects(self.execution_context.graphql_document)
            ):
                raise Forbidden("introspection is switched off", details={"scope": "admin"})
        except GatewayError as error:
            response = getattr(context, "response", None)
            if isinstance(response, Response):
                response.status_code = error.status
            raise
        yield


def _introspects(document: DocumentNode | None) -> bool:
    # A walk over the parsed document: cheap next to executing it, and only when switched off.
    return document is not None and any(
        _selects_introspection(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    )


def _selects_introspection(selection_set: SelectionSetNode | None) -> bool:
    if selection_set is None:
        return False
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value in INTROSPECTION_FIELDS:
            return True
        if _selects_introspection(getattr(selection, "selection_set", None)):
            return True
    return False
