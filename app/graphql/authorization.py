"""Per-operation admission: queries and subscriptions need `read`, mutations `write`; then the
request rate and the operation's estimated cost are counted against the caller."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

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
from app.graphql.cost import Estimator

INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


class Authorize(SchemaExtension):
    """Checks the caller against the operation once it is parsed and valid, over HTTP and
    websockets alike, before anything runs; a refusal is a FORBIDDEN (or UNAUTHENTICATED,
    RATE_LIMITED) error and, over HTTP, the matching status. A caller who sends the request
    extension `"cost": true` gets the estimate back in the response's `extensions.cost`."""

    def __init__(self, estimator: Estimator) -> None:
        super().__init__()
        self.estimator = estimator
        self.cost: int | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        try:
            identity = context.identity
            if identity is None:
                raise unauthenticated()
            if context.throttle is not None:
                await context.throttle()
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
            self.cost = self._estimate()
            if context.spend is not None and self.cost:
                await context.spend(self.cost)
        except GatewayError as error:
            response = getattr(context, "response", None)
            if isinstance(response, Response):
                response.status_code = error.status
                if error.retry_after is not None:
                    response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
            raise
        yield

    def _estimate(self) -> int | None:
        execution = self.execution_context
        document = execution.graphql_document
        if document is None:
            return None
        return self.estimator.of(execution.schema._schema, document, execution.operation_name)

    def get_results(self) -> dict[str, Any]:
        asked = self.execution_context.operation_extensions or {}
        if asked.get("cost") is not True or self.cost is None:
            return {}
        return {"cost": {"estimated": self.cost, "maximum": self.estimator.max_cost}}


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
