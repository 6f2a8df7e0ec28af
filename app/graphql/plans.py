"""Compiled execution plans: a validated query, compiled once per document and operation into
completers that read the service's models by attribute and call the real resolvers only where
the schema has them; what the compiler does not take runs on graphql-core, the reference
(docs/architecture.md, "Compiled plans")."""

from __future__ import annotations

import asyncio
import operator
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    is_leaf_type,
    located_error,
)
from graphql.execution import Executor, experimental_execute_incrementally
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values
from graphql.pyutils import Path, Undefined, gather_with_cancel, inspect, is_iterable

Complete = Callable[["_Run", Any, Any], Any]
"""(run, value, path) -> the completed value, or an awaitable of it; raises a field error."""

CONDITIONS = frozenset({"skip", "include"})
MAX_VARIANTS = 16
"""Distinct @skip/@include outcomes compiled per plan; past them the operation falls back."""

# Leaf kinds whose values pass unchanged when of this exact Python type (graphql-core's
# coerce_output_value returns them as they are); anything else takes the scalar's own coercion.
_VERBATIM: dict[str, Any] = {
    "String": str,
    "ID": str,
    "Boolean": bool,
    "Float": float,
    "Long": int,  # app/graphql/types.py: serialize=int, which returns an int as it is
}


class Unsupported(Exception):
    """The compiler does not take this document; graphql-core executes it."""


@dataclass(slots=True)
class _Field:
    key: str
    name: str
    nodes: list[FieldNode]
    parent: str
    definition: GraphQLField | None
    complete: Complete
    getter: Callable[[Any], Any] | None = None
    verbatim: Any = None
    finite: bool = False
    leaf: Complete | None = None
    """A plain attribute of a leaf type: its scalar's completion (never awaitable)."""
    resolve: Callable[..., Any] | None = None
    arguments: bool = False
    details: list[FieldDetails] = field(default_factory=list)


class _Run:
    """One execution's state: graphql-core's executor (its coerced variables, fragments and
    context) and the errors collected, with graphql-core's nulled-position rule."""

    __slots__ = ("background", "errors", "executor", "is_awaitable", "nulled")

    def __init__(self, executor: Executor[Any]) -> None:
        self.executor = executor
        self.is_awaitable = executor.is_awaitable
        self.errors: list[GraphQLError] = []
        self.nulled: set[Any] = set()
        self.background: set[asyncio.Future[Any]] = set()

    def add(self, error: GraphQLError, path: Any) -> None:
        position = path
        while position is not None:
            if position in self.nulled:
                return
            position = position[0]
        if None in self.nulled:
            return
        self.nulled.add(path)
        self.errors.append(error)

    def fail(self, raw: Exception, nullable: bool, nodes: list[FieldNode], path: Any) -> None:
        """graphql-core's handle_field_error: a non-null position passes the error up."""
        error = located_error(raw, nodes, _keys(path))
        if not nullable:
            raise error
        self.add(error, path)

    def settle(self, pending: list[Any]) -> None:
        # A failed sibling must not orphan the others: they still run, and their errors
        # are observed (graphql-core's settle_in_background).
        if pending:
            future = asyncio.gather(*pending, return_exceptions=True)
            self.background.add(future)
            future.add_done_callback(self.background.discard)

    def info(
        self, spec: _Field, path: Any, return_type: GraphQLOutputType
    ) -> GraphQLResolveInfo[Any]:
        executor = self.executor
        return GraphQLResolveInfo(
            spec.name,
            spec.nodes,
            return_type,
            executor.schema.get_type(spec.parent),  # type: ignore[arg-type]
            _graphql_path(path),  # type: ignore[arg-type]  # a field's path is never empty
            executor.schema,
            executor.fragment_definitions,
            executor.root_value,
            executor.operation,
            executor.variable_values,
            executor.context_value,
            executor.is_awaitable,
            executor.abort_signal,
            executor.async_helpers,
        )


def _keys(path: Any) -> list[str | int]:
    keys: list[str | int] = []
    while path is not None:
        keys.append(path[1])
        path = path[0]
    keys.reverse()
    return keys


def _graphql_path(path: Any) -> Path | None:
    chain = []
    while path is not None:
        chain.append(path)
        path = path[0]
    result: Path | None = None
    for _, key, typename in reversed(chain):
        result = Path(result, key, typename)
    return result


class _Compiler:
    """Builds the completers of one operation for one outcome of its @skip/@include."""

    def __init__(self, executor: Executor[Any]) -> None:
        self.executor = executor
        self.schema = executor.schema

    def operation(self) -> Complete:
        executor = self.executor
        root = self.schema.query_type
        if root is None:
            raise Unsupported("no query type")
        grouped, defers, _ = collect_fields(
            self.schema,
            executor.fragments,
            executor.variable_values,
            root,
            executor.operation,
            executor.hide_suggestions,
        )
        if defers:
            raise Unsupported("@defer")
        return self.selection(root, grouped)

    def selection(self, parent: GraphQLObjectType, grouped: dict[str, Any]) -> Complete:
        if parent.is_type_of is not None:
            raise Unsupported("is_type_of")
        fields = [self.field(parent, key, details) for key, details in grouped.items()]
        return _object_completer(parent.name, fields)

    def field(self, parent: GraphQLObjectType, key: str, details: list[FieldDetails]) -> _Field:
        node = details[0].node
        name = node.name.value
        nodes = [d.node for d in details]
        if any(d.defer_usage is not None or d.fragment_variable_values for d in details):
            raise Unsupported("@defer or fragment variables")
        if name == "__typename":
            return _Field(key, name, nodes, parent.name, None, _typename(parent.name))
        definition = self.schema.get_field(parent, name)
        if definition is None:
            raise Unsupported(f"unknown field {name}")
        complete = self.completer(definition.type, details, parent.name, name)
        spec = _Field(key, name, nodes, parent.name, definition, complete, details=details)
        resolve = definition.resolve
        attribute = getattr(resolve, "attribute", None) if resolve is not None else name
        if attribute is None:
            spec.resolve = resolve
            spec.arguments = bool(definition.args or node.arguments)
            return spec
        spec.getter = operator.attrgetter(attribute)
        leaf = definition.type.of_type if isinstance(definition.type, GraphQLNonNull) else None
        named = leaf if leaf is not None else definition.type
        if is_leaf_type(named):
            spec.leaf = complete
            spec.verbatim = _VERBATIM.get(named.name)
            spec.finite = named is GraphQLFloat
        return spec

    def completer(
        self, type_: GraphQLOutputType, details: list[FieldDetails], parent: str, name: str
    ) -> Complete:
        if isinstance(type_, GraphQLNonNull):
            if isinstance(type_.of_type, GraphQLObjectType):
                return _non_null_object(self.object(type_.of_type, details), parent, name)
            return _non_null(self.completer(type_.of_type, details, parent, name), parent, name)
        if isinstance(type_, GraphQLList):
            item = self.completer(type_.of_type, details, parent, name)
            nullable = not isinstance(type_.of_type, GraphQLNonNull)
            named = type_.of_type if nullable else type_.of_type.of_type
            verbatim = None
            if not nullable and is_leaf_type(named) and named is not GraphQLFloat:
                verbatim = _VERBATIM.get(named.name)
            nodes = [d.node for d in details]
            return _list_completer(item, nullable, nodes, parent, name, verbatim)
        if is_leaf_type(type_):
            return _leaf_completer(type_)
        if isinstance(type_, GraphQLObjectType):
            return _nullable(self.object(type_, details))
        raise Unsupported(f"abstract type {type_}")

    def object(self, type_: GraphQLObjectType, details: list[FieldDetails]) -> Complete:
        executor = self.executor
        grouped, defers, _ = collect_subfields(
            self.schema,
            executor.fragments,
            executor.variable_values,
            executor.operation,
            type_,
            details,
            executor.hide_suggestions,
        )
        if defers:
            raise Unsupported("@defer")
        return self.selection(type_, grouped)


def _typename(name: str) -> Complete:
    def complete(run: _Run, value: Any, path: Any) -> Any:
        return name

    return complete


def _nullable(complete: Complete) -> Complete:
    def nullable(run: _Run, value: Any, path: Any) -> Any:
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            return None
        return complete(run, value, path)

    return nullable


def _non_null(inner: Complete, parent: str, name: str) -> Complete:
    message = f"Cannot return null for non-nullable field {parent}.{name}."

    def non_null(run: _Run, value: Any, path: Any) -> Any:
        completed = inner(run, value, path)
        if completed is None:
            raise TypeError(message)
        return completed

    return non_null


def _non_null_object(inner: Complete, parent: str, name: str) -> Complete:
    """_non_null over _nullable for an object, in one call: an object's completion is never
    None, so only a None value is the non-null error."""
    message = f"Cannot return null for non-nullable field {parent}.{name}."

    def non_null_object(run: _Run, value: Any, path: Any) -> Any:
        if value is None or value is Undefined:
            raise TypeError(message)
        if isinstance(value, Exception):
            raise value
        return inner(run, value, path)

    return non_null_object


def _leaf_completer(type_: Any) -> Complete:
    coerce = type_.coerce_output_value
    verbatim = _VERBATIM.get(type_.name)
    finite = type_ is GraphQLFloat

    def leaf(run: _Run, value: Any, path: Any) -> Any:
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            return None
        if type(value) is verbatim and (not finite or isfinite(value)):
            return value
        coerced = coerce(value)
        if coerced is Undefined or coerced is None:
            raise TypeError(
                f"Expected `{inspect(type_)}.coerce_output_value({inspect(value)})` to return "
                f"non-nullable value, returned: {inspect(coerced)}"
            )
        return coerced

    return leaf


def _list_completer(
    item: Complete,
    nullable: bool,
    nodes: list[FieldNode],
    parent: str,
    name: str,
    verbatim: type | None = None,
) -> Complete:
    """A list; of non-null leaves all of the exact `verbatim` type, a copy of it as it is."""
    message = f"Expected Iterable, but did not find one for field '{parent}.{name}'."

    def complete_list(run: _Run, value: Any, path: Any) -> Any:
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            return None
        if not is_iterable(value):
            raise GraphQLError(message)
        if (
            verbatim is not None
            and isinstance(value, list)
            and all(type(element) is verbatim for element in value)
        ):
            return value.copy()
        is_awaitable = run.is_awaitable
        completed: list[Any] = []
        waiting: list[int] = []
        try:
            for index, element in enumerate(value):
                item_path = (path, index, None)
                if is_awaitable(element):
                    completed.append(_awaited(run, element, item, nullable, nodes, item_path))
                    waiting.append(index)
                    continue
                try:
                    done = item(run, element, item_path)
                except Exception as raw:
                    run.fail(raw, nullable, nodes, item_path)
                    done = None
                if is_awaitable(done):
                    completed.append(_guarded(run, done, nullable, nodes, item_path))
                    waiting.append(index)
                else:
                    completed.append(done)
        except Exception:
            run.settle([completed[i] for i in waiting])
            raise
        if not waiting:
            return completed
        return _gathered_list(completed, waiting)

    return complete_list


async def _gathered_list(completed: list[Any], waiting: list[int]) -> list[Any]:
    if len(waiting) == 1:
        completed[waiting[0]] = await completed[waiting[0]]
        return completed
    results = await gather_with_cancel(*(completed[i] for i in waiting))
    for index, result in zip(waiting, results, strict=True):
        completed[index] = result
    return completed


async def _guarded(
    run: _Run, completed: Awaitable[Any], nullable: bool, nodes: list[FieldNode], path: Any
) -> Any:
    try:
        return await completed
    except Exception as raw:
        run.fail(raw, nullable, nodes, path)
        return None


async def _awaited(
    run: _Run, value: Awaitable[Any], complete: Complete, nullable: bool, nodes: Any, path: Any
) -> Any:
    """graphql-core's complete_awaitable_value: await the resolver, then complete."""
    try:
        resolved = await value
        completed = complete(run, resolved, path)
        if run.is_awaitable(completed):
            completed = await completed
    except Exception as raw:
        run.fail(raw, nullable, nodes, path)
        return None
    return completed


def _object_completer(typename: str, fields: list[_Field]) -> Complete:
    """Complete an object: plain attributes of a leaf type are read and completed here (kept
    as they are when of the exact verbatim type), synchronously; every other field takes
    graphql-core's execute_field steps (and its resolver, if it has one)."""
    plain = tuple((f.key, f.getter, f.leaf, f.verbatim, f.finite, f) for f in fields)

    def complete_object(run: _Run, source: Any, path: Any) -> Any:
        result: dict[str, Any] = {}
        waiting: list[str] = []
        try:
            for key, getter, leaf, verbatim, finite, spec in plain:
                if leaf is not None:
                    try:
                        value = getter(source)  # type: ignore[misc]
                        if type(value) is verbatim and (not finite or isfinite(value)):
                            result[key] = value
                        else:
                            result[key] = leaf(run, value, None)
                    except Exception as raw:
                        result[key] = _failed(run, raw, spec, (path, key, typename))
                    continue
                done = result[key] = _execute(run, spec, source, path, Undefined)
                if run.is_awaitable(done):
                    waiting.append(key)
        except Exception:
            run.settle([result[k] for k in waiting])
            raise
        if not waiting:
            return result
        return _gathered_object(result, waiting)

    return complete_object


async def _gathered_object(result: dict[str, Any], waiting: list[str]) -> dict[str, Any]:
    if len(waiting) == 1:
        result[waiting[0]] = await result[waiting[0]]
        return result
    results = await gather_with_cancel(*(result[k] for k in waiting))
    result.update(zip(waiting, results, strict=True))
    return result


def _nullable_field(spec: _Field) -> bool:
    return spec.definition is None or not isinstance(spec.definition.type, GraphQLNonNull)


def _failed(run: _Run, raw: Exception, spec: _Field, path: Any) -> Any:
    run.fail(raw, _nullable_field(spec), spec.nodes, path)
    return None


def _execute(run: _Run, spec: _Field, source: Any, parent_path: Any, value: Any) -> Any:
    """graphql-core's execute_field for one field; `value` is the attribute when read."""
    path = (parent_path, spec.key, spec.parent)
    try:
        if spec.resolve is not None:
            definition = spec.definition
            assert definition is not None
            executor = run.executor
            arguments = (
                get_argument_values(
                    definition,
                    spec.nodes[0],
                    executor.variable_values,
                    spec.details[0].fragment_variable_values,
                    executor.hide_suggestions,
                )
                if spec.arguments
                else {}
            )
            value = spec.resolve(source, run.info(spec, path, definition.type), **arguments)
            if run.is_awaitable(value):
                return _awaited(run, value, spec.complete, _nullable_field(spec), spec.nodes, path)
        elif value is Undefined and spec.getter is not None:
            value = spec.getter(source)
        completed = spec.complete(run, value, path)
        if run.is_awaitable(completed):
            return _guarded(run, completed, _nullable_field(spec), spec.nodes, path)
        return completed
    except Exception as raw:
        return _failed(run, raw, spec, path)


@dataclass(slots=True)
class Plan:
    """One document's operation: the variables its @skip/@include read, and a compiled
    operation for each of their outcomes seen so far (None: that outcome falls back)."""

    conditions: tuple[str, ...]
    variants: dict[tuple[Any, ...], Complete | None] = field(default_factory=dict)

    def variant(self, executor: Executor[Any]) -> Complete | None:
        coerced = executor.variable_values.coerced
        key = tuple(coerced.get(name) for name in self.conditions)
        if key in self.variants:
            return self.variants[key]
        if len(self.variants) >= MAX_VARIANTS:
            return None
        try:
            compiled: Complete | None = _Compiler(executor).operation()
        except Unsupported:
            compiled = None
        self.variants[key] = compiled
        return compiled


def plan_of(document: DocumentNode, operation_name: str | None) -> Plan | None:
    """The document's plan, not yet compiled; None for what only graphql-core runs: other
    operation types, introspection, directives other than @skip and @include, and fragments
    with variables."""
    operation = _operation(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    if operation.directives or any(v.directives for v in operation.variable_definitions or ()):
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if any(f.variable_definitions for f in fragments.values()):
        return None
    conditions: dict[str, None] = {}
    if not _plain_selections(operation.selection_set, fragments, conditions):
        return None
    return Plan(tuple(conditions))


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        operations = [o for o in operations if o.name is not None and o.name.value == name]
    return operations[0] if len(operations) == 1 else None


def _plain_selections(
    root: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    conditions: dict[str, None],
) -> bool:
    """Whether the selections use only what the compiler takes; notes the variables of
    @skip/@include in `conditions`. Each fragment is walked once."""
    pending = [root]
    entered: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if not _plain_directives(selection.directives or (), conditions):
                return False
            if isinstance(selection, FieldNode):
                if selection.name.value in ("__schema", "__type"):
                    return False
                if selection.selection_set is not None:
                    pending.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None:
                    return False
                if name not in entered:
                    entered.add(name)
                    if fragment.directives:
                        return False
                    pending.append(fragment.selection_set)
    return True


def _plain_directives(directives: Iterable[DirectiveNode], conditions: dict[str, None]) -> bool:
    for directive in directives:
        if directive.name.value not in CONDITIONS:
            return False
        for argument in directive.arguments or ():
            if isinstance(argument.value, VariableNode):
                conditions[argument.value.name.value] = None
            elif not isinstance(argument.value, BooleanValueNode):
                return False
    return True


def _execute_plan(compiled: Complete, executor: Executor[Any]) -> Any:
    """graphql-core's execute_operation over the compiled root: a root error nulls `data`."""
    run = _Run(executor)
    try:
        data = compiled(run, executor.root_value, None)
    except GraphQLError as error:
        run.add(error, None)
        return ExecutionResult(None, run.errors or None)
    if run.is_awaitable(data):
        return _awaited_operation(run, data)
    return ExecutionResult(data, run.errors or None)


async def _awaited_operation(run: _Run, data: Awaitable[Any]) -> ExecutionResult:
    try:
        return ExecutionResult(await data, run.errors or None)
    except GraphQLError as error:
        run.add(error, None)
        return ExecutionResult(None, run.errors or None)


class Plans:
    """The schema's compiled plans, by document and operation name, at most `maxsize` (0: every
    operation runs on graphql-core), with counts of compiled and fallback executions."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._plans: OrderedDict[tuple[object, str | None], Plan | None] = OrderedDict()
        self.compiled = 0
        self.fallback = 0

    def __len__(self) -> int:
        return len(self._plans)

    def counts(self) -> tuple[dict[str, int], int]:
        """Executions by executor (compiled, fallback), and the plans kept now."""
        return {"compiled": self.compiled, "fallback": self.fallback}, len(self._plans)

    def plan(self, document: DocumentNode, operation_name: str | None) -> Plan | None:
        # Keyed by the document's text: a str caches its hash, where a parsed document
        # (a frozen dataclass) would be hashed node by node on every request.
        key = (document.loc.source.body if document.loc is not None else document, operation_name)
        plans = self._plans
        try:
            plan = plans[key]
        except KeyError:
            plan = plan_of(document, operation_name)
            plans[key] = plan
            if len(plans) > self.maxsize:
                plans.popitem(last=False)
            return plan
        plans.move_to_end(key)
        return plan

    def prepare(self, schema: GraphQLSchema, document: DocumentNode) -> int:
        """Compile a known document's operations ahead of time (persisted and trusted
        documents); those whose @skip/@include read variables compile at first use. Returns
        the operations compiled."""
        if self.maxsize == 0:
            return 0
        names: list[str | None] = [None]
        names += [
            d.name.value
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode) and d.name is not None
        ]
        fragments = {
            d.name.value: FragmentDetails(d)
            for d in document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        done = 0
        for name in names:
            plan = self.plan(document, name)
            operation = _operation(document, name)
            if plan is None or plan.conditions or operation is None:
                continue
            executor = _CompileOnly(schema, fragments, operation)
            done += plan.variant(executor) is not None  # type: ignore[arg-type]
        return done

    def execute(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        **options: Any,
    ) -> Any:
        """experimental_execute_incrementally, with a compiled plan when there is one."""
        middleware = options.get("middleware")
        plan = None
        if self.maxsize and not getattr(middleware, "middlewares", ()):
            plan = self.plan(document, operation_name)
        if plan is None:
            self.fallback += 1
            return experimental_execute_incrementally(
                schema,
                document,
                root_value,
                context_value,
                variable_values,
                operation_name,
                **options,
            )
        executor_class: type[Executor[Any]] = options.pop("executor_class", None) or Executor
        executor = executor_class.build(
            schema, document, root_value, context_value, variable_values, operation_name, **options
        )
        if isinstance(executor, list):
            self.compiled += 1
            return ExecutionResult(None, errors=executor)
        compiled = plan.variant(executor)
        if compiled is None:
            self.fallback += 1
            return executor.execute_operation()
        self.compiled += 1
        return _execute_plan(compiled, executor)


@dataclass
class _CompileOnly:
    """What the compiler reads of an executor, for a document compiled before any request:
    no variables (its @skip/@include read none)."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDetails]
    operation: OperationDefinitionNode
    variable_values: VariableValues = field(default_factory=lambda: VariableValues({}, {}))
    hide_suggestions: bool = False


__all__ = ["Plan", "Plans", "Unsupported", "plan_of"]
