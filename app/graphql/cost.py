"""Demand control: a static estimate of the MAAS reads an operation can trigger, figured once
per fragment, and the per-operation limit on it (docs/architecture.md, "Demand control")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

from app.graphql.limits import resolve_fragments

# Past this the figure only says "far too much": a fan-out of fragments multiplies without end.
CEILING = 10**12

COST_LIMIT_EXCEEDED = "COST_LIMIT_EXCEEDED"


@dataclass(frozen=True, slots=True)
class Reads:
    """What resolving a field once costs in MAAS reads: `fixed`, plus `per_item` for every
    item of the list it reads (the list size the model assumes). Fields of one `shared` group
    are served by one read, charged once per object; a field that `provides` a group returns
    objects whose read of that group is paid already."""

    fixed: int = 0
    per_item: int = 0
    shared: str | None = None
    provides: frozenset[str] = frozenset()


_DETAIL = frozenset({"detail"})

# The resolvers' reads (app/graphql/schema.py, app/service/boot.py). MAAS's boot-resource list is
# shallow, so each resource's sets cost a detail read (maas-api.md §9.11); import status reads the
# list, every resource's detail, and whether an import runs.
FIELD_READS: Mapping[tuple[str, str], Reads] = {
    ("Query", "bootResources"): Reads(1),
    ("Query", "bootResource"): Reads(1, provides=_DETAIL),
    ("Query", "bootSources"): Reads(1),
    ("Query", "bootSource"): Reads(1),
    ("Query", "importStatus"): Reads(2, 1),
    ("Subscription", "importProgress"): Reads(2, 1),
    ("Subscription", "bootResourcesReady"): Reads(2, 1),
    ("BootResource", "sets"): Reads(1, shared="detail"),
    ("BootResource", "latestSet"): Reads(1, shared="detail"),
    ("BootResource", "complete"): Reads(1, shared="detail"),
    ("BootSource", "selections"): Reads(1),
    ("ImportStatus", "incomplete"): Reads(provides=_DETAIL),
}


_FREE = Reads()


@dataclass(frozen=True, slots=True)
class CostModel:
    """How operations are weighed: every list is assumed to hold `list_size` items (nested
    lists multiply), and every mutation field costs `write` on top of what it selects."""

    list_size: int = 50
    write: int = 10
    reads: Mapping[tuple[str, str], Reads] = field(default_factory=lambda: FIELD_READS)


@dataclass(slots=True)
class _Own:
    """A definition's cost before its spreads, and each spread with its multiplier."""

    cost: int = 0
    spreads: list[tuple[str, int]] = field(default_factory=list)


class Estimator:
    """Per operation, the estimate; remembered per document (a document is parsed once and
    kept, app/graphql/limits.py)."""

    def __init__(self, model: CostModel, max_cost: int, maxsize: int = 256) -> None:
        self.model = model
        self.max_cost = max_cost
        self.estimate = lru_cache(maxsize=maxsize)(self._estimate)

    def _estimate(self, schema: GraphQLSchema, document: DocumentNode) -> dict[str, int]:
        own: dict[str, _Own] = {}
        operations: dict[str, _Own] = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                root = schema.get_type(definition.type_condition.name.value)
                figures = self._own(schema, definition.selection_set, root, write=False)
                own.setdefault(definition.name.value, figures)
            elif isinstance(definition, OperationDefinitionNode):
                root = schema.get_root_type(definition.operation)
                write = definition.operation is OperationType.MUTATION
                name = definition.name.value if definition.name else "anonymous"
                figures = self._own(schema, definition.selection_set, root, write=write)
                operations.setdefault(name, figures)
        spreads = {name: [spread for spread, _ in figures.spreads] for name, figures in own.items()}
        resolved = resolve_fragments(spreads, lambda name, done: _total(own[name], done))
        return {name: _total(figures, resolved) for name, figures in operations.items()}

    def _own(
        self, schema: GraphQLSchema, selection_set: SelectionSetNode, root: object, *, write: bool
    ) -> _Own:
        """One walk over a definition's own selections, each field weighed by the reads it
        triggers times the items of the lists above it (an explicit stack: nesting may be deep;
        the depth limit ran first). Unknown fields weigh nothing: validation reports them."""
        figures = _Own()
        model = self.model
        Pending = tuple[SelectionSetNode, object, int, frozenset[str]]
        pending: list[Pending] = [(selection_set, root, 1, frozenset())]
        while pending:
            selections, parent, multiplier, paid = pending.pop()
            if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
                continue
            charged = set(paid)
            for selection in selections.selections:
                if isinstance(selection, FragmentSpreadNode):
                    figures.spreads.append((selection.name.value, multiplier))
                elif isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    below = schema.get_type(condition.name.value) if condition else parent
                    pending.append((selection.selection_set, below, multiplier, paid))
                elif isinstance(selection, FieldNode):
                    name = selection.name.value
                    definition = parent.fields.get(name)
                    if definition is None:
                        continue
                    reads = model.reads.get((parent.name, name), _FREE)
                    cost = model.write if write and parent is schema.mutation_type else 0
                    if reads.shared is None or reads.shared not in charged:
                        cost += reads.fixed + reads.per_item * model.list_size
                        if reads.shared is not None:
                            charged.add(reads.shared)
                    figures.cost = min(CEILING, figures.cost + multiplier * cost)
                    if selection.selection_set is not None:
                        items, field_type = _unwrap(definition.type, model.list_size)
                        inner = min(CEILING, multiplier * items)
                        pending.append((selection.selection_set, field_type, inner, reads.provides))
        return figures

    def errors(self, schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
        return [
            over_limit(name, cost, self.max_cost)
            for name, cost in self.estimate(schema, document).items()
            if cost > self.max_cost
        ]

    def of(
        self, schema: GraphQLSchema, document: DocumentNode, operation: str | None
    ) -> int | None:
        """The estimate of the operation that runs (the only one when none is named)."""
        estimates = self.estimate(schema, document)
        if operation is not None:
            return estimates.get(operation)
        return next(iter(estimates.values())) if len(estimates) == 1 else None


def _total(figures: _Own, resolved: Mapping[str, int]) -> int:
    cost = figures.cost
    for name, multiplier in figures.spreads:
        cost = min(CEILING, cost + multiplier * resolved.get(name, 0))
    return cost


def _unwrap(output: GraphQLOutputType, list_size: int) -> tuple[int, object]:
    """The items one value of a field's type holds (lists of lists multiply), and its type."""
    items = 1
    while isinstance(output, GraphQLNonNull | GraphQLList):
        if isinstance(output, GraphQLList):
            items *= list_size
        output = output.of_type
    return items, output


def over_limit(operation: str, cost: int, maximum: int) -> GraphQLError:
    figure = str(cost) if cost < CEILING else f"more than {CEILING}"
    return GraphQLError(
        f"'{operation}' is estimated at {figure} MAAS reads. Allowed: {maximum}",
        extensions={
            "code": COST_LIMIT_EXCEEDED,
            "cost": {"estimated": min(cost, CEILING), "maximum": maximum},
        },
    )
