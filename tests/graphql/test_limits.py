"""Document limits cost work linear in the document, counted in visits and calls, not time;
and they refuse what strawberry's own depth and alias rules refuse."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    Visitor,
    parse,
    specified_rules,
    validate,
    visit,
)
from graphql.language import Lexer, Source, TokenKind
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.extensions.max_aliases import create_validator as strawberry_aliases
from strawberry.extensions.query_depth_limiter import create_validator as strawberry_depth

from app.cli.server import BackgroundServer
from app.graphql.limits import Limits, count_tokens, measure
from app.graphql.schema import GatewaySchema, build_schema
from app.main import create_app
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings
from tests.graphql.documents import fragment_fan_out

# Every figure below counts work, so the examples are the same on every run and every machine.
PROPERTY = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
MAX_TOKENS = 2000
# Parsing and validating a document calls about 40-290 Python functions per token (the most
# for short documents, where fixed costs dominate): measured on ordinary and hostile documents.
CALLS_PER_TOKEN = 300
FIXED_CALLS = 20_000


class _Selections(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def enter(self, node: Any, *_: Any) -> None:
        if isinstance(node, FieldNode | FragmentSpreadNode | InlineFragmentNode):
            self.count += 1


def selections_in(document: DocumentNode) -> int:
    """Selections as written, counted by graphql-core's own visitor."""
    counter = _Selections()
    visit(document, counter)
    return counter.count


def calls_made(work: Callable[[], object]) -> int:
    """Python and C function calls made by `work`: a count of the work, unlike a timing."""
    calls = 0

    def count(_frame: FrameType, event: str, _arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        work()
    except Exception:
        pass
    finally:
        sys.setprofile(None)
    return calls


@pytest.fixture(scope="module")
def schema() -> GatewaySchema:
    return build_schema(max_tokens=MAX_TOKENS)


def checked(schema: GatewaySchema, document: str) -> None:
    """What the schema does with a document before executing it: parse, limits, rules."""
    documents = schema.documents
    parsed = documents.parse(document)
    documents.validate(schema._schema, parsed, tuple(specified_rules))


def fan_outs(max_levels: int = 60) -> st.SearchStrategy[str]:
    """Fragments each spreading the next `width` times, with an alias at every level or none."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        levels = draw(st.integers(1, max_levels))
        width = draw(st.integers(1, 4))
        aliased = draw(st.booleans())
        field = "a: __typename" if aliased else "__typename"
        fragments = " ".join(
            f"fragment F{i} on Query {{ {field} " + f"...F{i + 1} " * width + "}"
            for i in range(levels)
        )
        return f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ {field} }}"

    return build()


def nestings(max_depth: int = 300) -> st.SearchStrategy[str]:
    """Nested selections; past about 200 levels graphql-core's parser refuses them itself."""
    return st.integers(1, max_depth).map(
        lambda depth: "{ " + "bootSources { selections { " * depth + "id" + " } }" * depth + " }"
    )


def wide_aliases() -> st.SearchStrategy[str]:
    return st.integers(1, 1200).map(
        lambda n: "{ " + " ".join(f"a{i}: bootSources {{ id }}" for i in range(n)) + " }"
    )


def directives() -> st.SearchStrategy[str]:
    return st.integers(1, 3000).map(lambda n: "{ __typename " + "@skip(if: false) " * n + "}")


def variables() -> st.SearchStrategy[str]:
    return st.integers(1, 1500).map(
        lambda n: "query(" + " ".join(f"$v{i}: Int" for i in range(n)) + ") { __typename }"
    )


def repeats() -> st.SearchStrategy[str]:
    return st.tuples(st.integers(1, 600), st.booleans()).map(
        lambda shape: (
            "{ "
            + ("... on Query { bootSources { id } } " if shape[1] else "bootSources { id } ")
            * shape[0]
            + "}"
        )
    )


HOSTILE = st.one_of(fan_outs(), nestings(), wide_aliases(), directives(), variables(), repeats())


@PROPERTY
@given(st.one_of(fan_outs(), nestings(90), wide_aliases(), directives(), variables(), repeats()))
def test_limits_visit_each_selection_of_a_document_once(document: str) -> None:
    parsed = parse(document, no_location=True)
    assert measure(parsed).visits == selections_in(parsed)


@PROPERTY
@given(HOSTILE)
def test_checks_before_execution_cost_calls_linear_in_the_tokens_when_hostile(
    schema: GatewaySchema, document: str
) -> None:
    tokens = min(count_tokens(document, MAX_TOKENS), MAX_TOKENS + 1)
    calls = calls_made(lambda: checked(schema, document))
    assert calls <= FIXED_CALLS + CALLS_PER_TOKEN * tokens, (tokens, calls)


@PROPERTY
@given(
    st.one_of(
        fan_outs(max_levels=7),  # strawberry's rules expand every spread: keep them small
        nestings().filter(lambda d: len(d) < 2000),
        wide_aliases().filter(lambda d: len(d) < 2000),
    ),
    st.integers(1, 12),
    st.integers(0, 40),
)
def test_limits_refuse_what_strawberrys_rules_refuse(
    schema: GatewaySchema, document: str, max_depth: int, max_aliases: int
) -> None:
    parsed = parse(document, no_location=True)
    ours = Limits(max_depth, max_aliases).errors(parsed)
    rules = [strawberry_depth(max_depth, None), strawberry_aliases(max_aliases)]
    theirs = validate(schema._schema, parsed, rules)
    assert bool(ours) == bool(theirs), ([e.message for e in ours], [e.message for e in theirs])


@pytest.mark.parametrize("levels", [20, 200])
def test_a_fragment_fan_out_is_refused_in_calls_linear_in_its_levels(
    levels: int,
) -> None:
    wide = build_schema(max_tokens=100_000)
    document = fragment_fan_out(levels, leaf="a: __typename")
    calls = calls_made(lambda: checked(wide, document))
    assert calls <= FIXED_CALLS + CALLS_PER_TOKEN * count_tokens(document, 100_000)
    errors = Limits(10, 30).errors(parse(document))
    assert [e.message for e in errors] == [
        f"{2**levels if levels < 30 else 'more than 10^9'} aliases found. Allowed: 30"
    ]


PARSER = "graphql/language/parser.py"


def test_tokens_are_counted_as_graphql_cores_lexer_counts_them() -> None:
    document = (
        'query Q($v: [Int!]! = 3) { a(s: "x\\"y#z", b: """blo"ck""", n: -1.5e3, l: [1, 2]) '
        "{ b ...F ... on X @d { c } } } # comment\nfragment F on Q { x }"
    )
    lexer = Lexer(Source(document))
    tokens = 0
    while lexer.advance().kind is not TokenKind.EOF:
        tokens += 1
    assert count_tokens(document, 10**6) == tokens


def test_a_document_over_the_token_limit_is_refused_before_it_is_parsed(
    schema: GatewaySchema,
) -> None:
    document = "{ " + "__typename " * (MAX_TOKENS + 1) + "}"
    parsed: list[str] = []

    def tracer(frame: FrameType, event: str, _arg: object) -> None:
        code = frame.f_code
        if event == "call" and code.co_filename.endswith(PARSER) and code.co_name == "parse":
            parsed.append(code.co_name)

    sys.setprofile(tracer)
    try:
        with pytest.raises(Exception, match=f"more than {MAX_TOKENS} tokens"):
            schema.documents.parse(document)
    finally:
        sys.setprofile(None)
    assert parsed == []


def test_fields_repeated_past_the_bound_in_one_selection_set_are_refused() -> None:
    document = parse("{ " + "... on Query { bootSources { id } } " * 26 + "}")
    [error] = Limits(10, 30).errors(document)
    assert error.message == "'bootSources' is selected 26 times in one selection set. Allowed: 25"
    assert Limits(10, 30).errors(parse("{ " + "bootSources { id } " * 25 + "}")) == []


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_document_over_the_token_limit_is_never_parsed_on_its_way_through_the_gateway(
    simulator: BackgroundServer, method: str
) -> None:
    # "subscription" in it: the endpoint looks for subscriptions before strawberry runs.
    document = "subscription { " + "__typename " * 2500 + "}"
    app = create_app(gateway_settings(simulator.url, ADMIN_KEY, readiness_probe_interval=60))
    parsed: list[str] = []

    def tracer(frame: FrameType, event: str, _arg: object) -> None:
        code = frame.f_code
        if event == "call" and code.co_filename.endswith(PARSER) and code.co_name == "parse":
            parsed.append(code.co_name)

    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            sys.setprofile(tracer)
            try:
                if method == "POST":
                    response = await client.post("/graphql", json={"query": document})
                else:
                    response = await client.get("/graphql", params={"query": document})
            finally:
                sys.setprofile(None)
    assert parsed == []
    [error] = response.json()["errors"]
    assert "more than 2000 tokens" in error["message"]
