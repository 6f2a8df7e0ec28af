"""Demand control: the static cost estimate, the per-operation limit and the per-principal
budget, estimated without executing anything and refused before MAAS is asked."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from app.cli.server import BackgroundServer
from app.graphql.cost import FIELD_READS, CostModel, Estimator, Reads
from app.graphql.schema import GatewaySchema, build_schema
from tests.gateway import GatewayFactory, reset_counts, upstream_counts

NESTED = "{ bootResources { id sets { id files { filename } } } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture(scope="module")
def schema() -> GatewaySchema:
    return build_schema()


def estimate(schema: GatewaySchema, document: str, list_size: int = 50) -> int:
    estimator = Estimator(CostModel(list_size=list_size), max_cost=1000)
    [cost] = estimator.estimate(schema._schema, parse(document)).values()
    return cost


def test_a_listed_resource_costs_one_detail_read_for_all_its_detail_fields(
    schema: GatewaySchema,
) -> None:
    assert estimate(schema, "{ bootResources { id name } }") == 1
    assert estimate(schema, NESTED) == 1 + 50
    # sets, latestSet and complete come from the same detail read (maas-api.md §9.11).
    assert estimate(schema, "{ bootResources { sets { id } latestSet { id } complete } }") == 51
    assert estimate(schema, NESTED, list_size=10) == 11


def test_nested_lists_multiply_and_aliases_add(schema: GatewaySchema) -> None:
    assert estimate(schema, "{ bootSources { selections { id } } }") == 1 + 50
    assert estimate(schema, "{ a: bootResources { sets { id } } b: bootResources { id } }") == 52
    # Import status reads whether MAAS imports, the list and every resource's detail.
    assert estimate(schema, "{ importStatus { importing incomplete { sets { id } } } }") == 52
    # One resource is read in detail: its sets come with it.
    assert estimate(schema, '{ bootResource(id: "1") { sets { id } complete } }') == 1


def test_every_mutation_field_costs_a_write_on_top_of_what_it_selects(
    schema: GatewaySchema,
) -> None:
    assert estimate(schema, "mutation { startImport { started } }") == 10
    assert (
        estimate(schema, "mutation { a: startImport { started } b: stopImport { started } }") == 20
    )


def test_a_fragment_fan_out_is_figured_once_per_fragment(schema: GatewaySchema) -> None:
    # Each level spreads the next twice: 2^30 spreads, estimated without visiting them.
    levels = 30
    fragments = "".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(levels)
    )
    document = (
        "{ ...F0 }\n" + fragments + f"fragment F{levels} on Query {{ bootResources {{ id }} }}"
    )
    assert estimate(schema, document) == 2**levels


# A reference: the same weights applied to the document with every spread expanded in place.
def naive(schema: GraphQLSchema, document: DocumentNode, model: CostModel) -> int:
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    root = schema.query_type
    assert root is not None
    return _naive_set(schema, operation.selection_set, root, fragments, model)


def _naive_set(
    schema: GraphQLSchema,
    selections: SelectionSetNode,
    parent: GraphQLObjectType,
    fragments: dict[str, FragmentDefinitionNode],
    model: CostModel,
    paid: frozenset[str] = frozenset(),
) -> int:
    total, charged = 0, set[str | None](paid)
    for selection in selections.selections:
        if isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            total += _naive_set(schema, fragment.selection_set, parent, fragments, model)
        elif isinstance(selection, InlineFragmentNode):
            total += _naive_set(schema, selection.selection_set, parent, fragments, model, paid)
        elif isinstance(selection, FieldNode):
            definition = parent.fields[selection.name.value]
            reads = FIELD_READS.get((parent.name, selection.name.value), Reads())
            if reads.shared is None or reads.shared not in charged:
                total += reads.fixed + reads.per_item * model.list_size
                charged.add(reads.shared)
            if selection.selection_set is not None:
                items, output = 1, definition.type
                while isinstance(output, GraphQLNonNull | GraphQLList):
                    items *= model.list_size if isinstance(output, GraphQLList) else 1
                    output = output.of_type
                assert isinstance(output, GraphQLObjectType)
                below = _naive_set(
                    schema, selection.selection_set, output, fragments, model, reads.provides
                )
                total += items * below
    return total


RESOURCE_FIELDS = ["id", "name", "sets { id files { size } }", "latestSet { id }", "complete"]
QUERY_FIELDS = [
    "bootResources {{ {} }}",
    "importStatus {{ importing incomplete {{ {} }} }}",
    'bootResource(id: "1") {{ {} }}',
    "bootSources {{ id selections {{ id }} }}",
]


@st.composite
def fragment_documents(draw: st.DrawFn) -> str:
    """Chains of Query fragments, each spreading later ones (no cycles), some spread twice."""
    count = draw(st.integers(1, 6))
    lines = []
    for i in range(count):
        later = list(range(i + 1, count))
        spreads = draw(st.lists(st.sampled_from(later), max_size=3)) if later else []
        fields = draw(st.lists(st.sampled_from(RESOURCE_FIELDS), min_size=1, max_size=3))
        own = (
            f"bootResources {{ {' '.join(fields)} }}"
            if draw(st.booleans())
            else "bootSources { id }"
        )
        spread_text = " ".join(f"...F{j}" for j in spreads)
        lines.append(f"fragment F{i} on Query {{ {own} {spread_text} }}")
    top = draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=3))
    return "{ " + " ".join(f"...F{j}" for j in top) + " }\n" + "\n".join(lines)


@settings(max_examples=150, deadline=None)
@given(fragment_documents(), st.integers(1, 20))
def test_the_estimate_equals_the_cost_of_the_document_with_its_fragments_expanded(
    document: str, list_size: int
) -> None:
    schema = build_schema()._schema
    model = CostModel(list_size=list_size)
    parsed = parse(document)
    [cost] = Estimator(model, max_cost=1).estimate(schema, parsed).values()
    assert cost == naive(schema, parsed, model)


# Over HTTP, against the simulator ---------------------------------------------------------


def post(url: str, body: dict[str, Any], accept: str = GRAPHQL_RESPONSE) -> httpx.Response:
    return httpx.post(f"{url}/graphql", json=body, headers={"Accept": accept}, timeout=30)


def test_an_operation_over_the_cost_limit_is_refused_with_its_estimate_before_maas_is_asked(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(graphql_max_cost=30)
    reset_counts(simulator.url)
    response = post(gateway.url, {"query": NESTED})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": "COST_LIMIT_EXCEEDED",
        "cost": {"estimated": 51, "maximum": 30},
    }
    assert "estimated at 51 MAAS reads" in error["message"]
    assert sum(upstream_counts(simulator.url).values()) == 0
    # Within the limit, the same gateway answers.
    assert "errors" not in post(gateway.url, {"query": "{ bootResources { id } }"}).json()


def test_a_caller_who_asks_gets_the_estimate_in_the_response_extensions(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway()
    asked = post(gateway.url, {"query": NESTED, "extensions": {"cost": True}}).json()
    assert asked["extensions"]["cost"] == {"estimated": 51, "maximum": 1000}
    assert asked["data"]["bootResources"]
    assert "extensions" not in post(gateway.url, {"query": NESTED}).json()


def test_the_cost_budget_refuses_once_spent_with_retry_after(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    # Two nested queries (51 each) fit in 120; the budget refills in an hour.
    gateway = start_gateway(cost_budget=120, cost_budget_window=3600, response_cache_ttl=0)
    for _ in range(2):
        assert "errors" not in post(gateway.url, {"query": NESTED}).json()
    reset_counts(simulator.url)
    refused = post(gateway.url, {"query": NESTED})
    assert refused.status_code == 429
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["cost"] == {"estimated": 51, "budget": 120}
    # 33 of the 51 must refill at 120 an hour: about 990 s.
    assert 900 <= int(refused.headers["Retry-After"]) <= 1000
    assert sum(upstream_counts(simulator.url).values()) == 0
    # What is left still pays for a cheap query.
    assert "errors" not in post(gateway.url, {"query": "{ bootResources { id } }"}).json()


def test_an_operation_dearer_than_the_whole_budget_is_refused_outright(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(cost_budget=40, response_cache_ttl=0)
    refused = post(gateway.url, {"query": NESTED}, accept="application/json")
    assert refused.status_code == 429
    [error] = refused.json()["errors"]
    assert "more than the whole budget (40 per 60 s)" in error["message"]
    assert "Retry-After" not in refused.headers


def test_operations_over_a_websocket_spend_the_same_budget(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(cost_budget=120, cost_budget_window=3600, response_cache_ttl=0)
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        frames = []
        for n in range(3):
            ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": NESTED}}))
            while not frames or frames[-1]["type"] not in ("complete", "error"):
                frames.append(json.loads(ws.recv(timeout=30)))
            frames.append({"type": "-"})  # the end of one operation's frames
    kinds = [frame["type"] for frame in frames]
    assert kinds == ["next", "complete", "-", "next", "complete", "-", "error", "-"]
    [error] = frames[6]["payload"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["cost"] == {"estimated": 51, "budget": 120}
    # Over HTTP the same principal finds the budget spent too.
    assert post(gateway.url, {"query": NESTED}).status_code == 429
