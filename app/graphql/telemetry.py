"""GraphQL operations as metrics and logs see them (a bounded operation label and error codes),
and resolver spans when tracing is on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from inspect import isawaitable
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLResolveInfo,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from opentelemetry.trace import Tracer
from strawberry.extensions import SchemaExtension

from app.observability.context import current_request

INVALID = "invalid"
"""The label of a document that did not parse or validate: it names no real operation."""


def selected_operation(
    parsed: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    """The operation a request runs (the named one, or the only one); None when the document
    does not single one out."""
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return operations[0] if len(operations) == 1 else None


def operation_label(parsed: DocumentNode, operation_name: str | None = None) -> str:
    """`<operation type> <root fields, sorted, comma-separated>`, e.g. `query bootResources`.

    Built from the schema's root field names, never the client's operation name or aliases, so
    the label set stays as small as the schema. Only call it for a document that validated;
    unknown fields would otherwise become labels.
    """
    operation = selected_operation(parsed, operation_name)
    if operation is None:
        return INVALID
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    fields = sorted(_root_fields(operation.selection_set, fragments))
    return f"{operation.operation.value} {','.join(fields)}"


def _root_fields(
    selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]
) -> set[str]:
    # Each fragment is entered once, however often it is spread: a fan-out of spreads costs
    # no more than the document's length, and a cycle ends.
    fields: set[str] = set()
    entered: set[str] = set()
    pending = [selections]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                fields.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None and selection.name.value not in entered:
                    entered.add(selection.name.value)
                    pending.append(fragment.selection_set)
    return fields


class OperationTelemetry(SchemaExtension):
    """Puts the operation's label and its error codes on the request's record.

    List it before the extension that codes errors: hooks exit in reverse order, so the codes
    are in place when this one reads them.
    """

    def on_execute(self) -> Iterator[None]:
        # Execution starts only for a document that parsed and validated.
        record = current_request.get()
        context = self.execution_context
        if record is not None and context.graphql_document is not None:
            record.operation = operation_label(context.graphql_document, context.operation_name)
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        record = current_request.get()
        if record is None:
            return
        if record.operation is None:
            record.operation = INVALID
        errors = getattr(self.execution_context.result, "errors", None)
        if errors:
            record.errors = tuple(
                str((error.extensions or {}).get("code", "INTERNAL")) for error in errors
            )


def resolver_spans(tracer: Tracer) -> Callable[[], SchemaExtension]:
    """An extension factory: one span per I/O resolver call, named by its family (the type and
    field, e.g. `Query.bootResources`). Plain synchronous fields get none."""

    class ResolverSpans(SchemaExtension):
        def resolve(
            self,
            _next: Callable[..., Any],
            root: Any,
            info: GraphQLResolveInfo[Any],
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            result = _next(root, info, *args, **kwargs)
            if isawaitable(result):
                return _traced(result, info)
            return result

    async def _traced(result: Awaitable[Any], info: GraphQLResolveInfo[Any]) -> Any:
        family = f"{info.parent_type.name}.{info.field_name}"
        path = ".".join(str(key) for key in info.path.as_list())
        with tracer.start_as_current_span(
            f"resolve {family}", attributes={"graphql.field": family, "graphql.path": path}
        ):
            return await result

    return ResolverSpans
