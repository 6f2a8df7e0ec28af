"""Document limits, cheapest first: tokens counted before the parse, then depth and aliases
measured in one pass that figures each fragment once."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from graphql import validate as validate_rules
from graphql.validation import ASTValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

T = TypeVar("T")

# GraphQL's lexical tokens (spec §2.1); comments, commas and white space are ignored. Where it
# errs it counts fewer tokens than the parser, which still enforces the exact limit.
_TOKEN = re.compile(
    r'(?P<comment>#[^\n\r]*)|"""(?:\\"""|[^"]|"(?!""))*"""|"(?:[^"\\\n\r]|\\.)*"'
    r"|\.\.\.|[!$&():=@\[\]{|}]|[_A-Za-z][_0-9A-Za-z]*|-?[0-9][0-9.eE+-]*"
)


def count_tokens(document: str, stop_after: int) -> int:
    """The document's tokens, counted up to just past `stop_after`: a regular expression runs
    many times faster than graphql-core's lexer, so an over-long document costs no parse."""
    count = 0
    for match in _TOKEN.finditer(document):
        if match.lastgroup is None:
            count += 1
            if count > stop_after:
                break
    return count


def cached_parse(max_tokens: int, maxsize: int) -> Callable[[str], DocumentNode]:
    """Parse a document, remembered by its text; over `max_tokens` it fails with the parser's
    own message before the parser runs."""

    @lru_cache(maxsize=maxsize)
    def parse_document(query: str) -> DocumentNode:
        if count_tokens(query, max_tokens) > max_tokens:
            raise GraphQLError(f"Document contains more than {max_tokens} tokens. Parsing aborted.")
        return parse(query, max_tokens=max_tokens)

    return parse_document


@dataclass(frozen=True, slots=True)
class Figures:
    """What one definition (operation or fragment) weighs with every fragment it spreads.

    depth: the deepest field level below it (root fields are level 0); aliases: its aliased
    fields, a fragment's counted once for every place it is spread (the response repeats them).
    """

    depth: int = 0
    aliases: int = 0


@dataclass(slots=True)
class _Own:
    """A definition's figures before its spreads are added, and where it spreads what."""

    depth: int = 0
    aliases: int = 0
    spreads: list[tuple[str, int | None]] = field(default_factory=list)
    repeats: int = 0
    repeated: str = ""


@dataclass(frozen=True, slots=True)
class Measure:
    """A document's figures: per operation, and the selections visited to get them (each
    selection of each definition once, however often its fragment is spread)."""

    operations: dict[str, Figures]
    visits: int
    repeats: int = 0
    repeated: str = ""

    @property
    def aliases(self) -> int:
        return sum(figures.aliases for figures in self.operations.values())


def measure(document: DocumentNode) -> Measure:
    """Figure every fragment once and reuse it at each spread, so the work is linear in the
    document: a fragment spreading the next one twice, twenty deep, doubles no work."""
    own: dict[str, _Own] = {}
    operations: dict[str, _Own] = {}
    visits = 0
    repeats = (0, "")
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            figures, seen = _own(definition.selection_set)
            own.setdefault(definition.name.value, figures)
        elif isinstance(definition, OperationDefinitionNode):
            figures, seen = _own(definition.selection_set)
            name = definition.name.value if definition.name else "anonymous"
            operations.setdefault(name, figures)
        else:
            continue
        visits += seen
        repeats = max(repeats, (figures.repeats, figures.repeated))
    spreads = {name: [spread for spread, _ in f.spreads] for name, f in own.items()}
    resolved = resolve_fragments(spreads, lambda name, done: _combine(own[name], done))
    combined = {name: _combine(figures, resolved) for name, figures in operations.items()}
    return Measure(combined, visits, *repeats)


def _own(selection_set: SelectionSetNode) -> tuple[_Own, int]:
    """One walk over a definition's own selections (an explicit stack: nesting may be deep).
    Below an introspection field the level is None: aliases count there, depth does not (as
    strawberry's depth rule had it; graphql-core bounds introspection depth itself). Fields
    of one selection set and its inline fragments are one group: graphql-core compares every
    two fields of a group that share a response name, so their number is bounded too."""
    figures = _Own()
    visits = 0
    groups: Counter[tuple[int, str]] = Counter()
    pending: list[tuple[SelectionSetNode, int | None, int]] = [(selection_set, 0, 0)]
    while pending:
        selections, level, group = pending.pop()
        for selection in selections.selections:
            visits += 1
            if level is not None:
                figures.depth = max(figures.depth, level)
            if isinstance(selection, FragmentSpreadNode):
                figures.spreads.append((selection.name.value, level))
            elif isinstance(selection, FieldNode):
                figures.aliases += selection.alias is not None
                groups[group, (selection.alias or selection.name).value] += 1
                if selection.selection_set is not None:
                    below = None
                    if level is not None and not selection.name.value.startswith("__"):
                        below = level + 1
                    pending.append((selection.selection_set, below, visits))
            elif isinstance(selection, InlineFragmentNode):
                pending.append((selection.selection_set, level, group))
    if groups:
        (_, figures.repeated), figures.repeats = groups.most_common(1)[0]
    return figures, visits


def resolve_fragments(
    spreads: Mapping[str, list[str]], combine: Callable[[str, dict[str, T]], T]
) -> dict[str, T]:
    """Every fragment's full figure, in dependency order: `combine(name, done)` figures one
    whose spreads are all done (an explicit stack: chains may be long). A spread that closes a
    cycle or names no fragment adds nothing; validation then reports it as such."""
    resolved: dict[str, T] = {}
    in_progress: set[str] = set()
    for start in spreads:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in resolved:
                stack.pop()
                continue
            in_progress.add(name)
            waiting = [
                spread
                for spread in spreads[name]
                if spread in spreads and spread not in resolved and spread not in in_progress
            ]
            if waiting:
                stack.extend(dict.fromkeys(waiting))
                continue
            stack.pop()
            in_progress.discard(name)
            resolved[name] = combine(name, resolved)
    return resolved


def _combine(figures: _Own, resolved: dict[str, Figures]) -> Figures:
    depth, aliases = figures.depth, figures.aliases
    for name, level in figures.spreads:
        spread = resolved.get(name)
        if spread is not None:
            if level is not None:
                depth = max(depth, level + spread.depth)
            aliases += spread.aliases
    return Figures(depth, aliases)


@dataclass(frozen=True, slots=True)
class Limits:
    """The settings' bounds on a document that parsed (the parser itself bounds tokens)."""

    max_depth: int
    max_aliases: int
    max_repeats: int = 25

    def errors(self, document: DocumentNode) -> list[GraphQLError]:
        figures = measure(document)
        errors = [
            GraphQLError(f"'{name}' exceeds maximum operation depth of {self.max_depth}")
            for name, operation in figures.operations.items()
            if operation.depth > self.max_depth
        ]
        if figures.aliases > self.max_aliases:
            found = _count(figures.aliases)
            errors.append(GraphQLError(f"{found} aliases found. Allowed: {self.max_aliases}"))
        if figures.repeats > self.max_repeats:
            errors.append(
                GraphQLError(
                    f"'{figures.repeated}' is selected {figures.repeats} times in one selection "
                    f"set. Allowed: {self.max_repeats}"
                )
            )
        return errors


def _count(number: int) -> str:
    # A fan-out of fragments multiplies aliases past any readable figure.
    return str(number) if number < 10**9 else "more than 10^9"


Validate = Callable[
    [GraphQLSchema, DocumentNode, tuple[type[ASTValidationRule], ...], bool], list[GraphQLError]
]
"""(schema, document, rules, hide suggestions) -> errors."""


Costs = Callable[[GraphQLSchema, DocumentNode], list[GraphQLError]]
"""(schema, document) -> errors for operations over the cost limit (app/graphql/cost.py)."""


def cached_validation(limits: Limits, maxsize: int, costs: Costs | None = None) -> Validate:
    """The limits first, then the cost estimate, then graphql-core's rules only for a document
    within them (some of those rules are not linear in fragment fan-outs); remembered per
    document, per schema."""

    @lru_cache(maxsize=maxsize)
    def validate(
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
        hide_suggestions: bool = False,
    ) -> list[GraphQLError]:
        errors = limits.errors(document)
        if not errors and costs is not None:
            errors = costs(schema, document)
        if errors:
            return errors
        # strawberry's validate_document, with graphql-core's hide_suggestions passed on.
        every = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
        return validate_rules(schema, document, every, hide_suggestions=hide_suggestions)

    return validate


class Documents:
    """The schema's document checks, each remembered: the parse by the document's text, the
    validation by the parsed document."""

    def __init__(
        self, limits: Limits, *, max_tokens: int, maxsize: int = 256, costs: Costs | None = None
    ) -> None:
        self.parse = cached_parse(max_tokens, maxsize)
        self.validate = cached_validation(limits, maxsize, costs)

    def checks(self) -> DocumentChecks:
        return DocumentChecks(self.parse, self.validate)


def hides_suggestions(context: object) -> bool:
    """Whether "Did you mean ...?" would tell this caller more of the schema than it may see:
    always while introspection is off, and for a caller who showed no credential."""
    identity = getattr(context, "identity", None)
    return not getattr(context, "introspection", True) or identity is None or not identity.verified


class DocumentChecks(SchemaExtension):
    """Stands in for strawberry's MaxTokensLimiter, ParserCache and ValidationCache: those
    count tokens only inside the parse and run every rule before ours."""

    def __init__(self, parse: Callable[[str], DocumentNode], validate: Validate) -> None:
        super().__init__()
        self.parse = parse
        self.validate = validate

    def on_parse(self) -> Iterator[None]:
        # A syntax or token-limit error raised here escapes strawberry's own handling: the
        # HTTP view and GatewaySchema.stream make it the result's error.
        context = self.execution_context
        if context.query:
            context.graphql_document = self.parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            context.pre_execution_errors = self.validate(
                context.schema._schema,
                context.graphql_document,
                tuple(context.validation_rules),
                hides_suggestions(context.context),
            )
        yield
