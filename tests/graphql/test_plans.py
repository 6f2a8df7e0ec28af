"""Compiled plans against graphql-core: generated queries over the real schema, sent to a gateway
that compiles and to one that does not (graphql_max_plans=0), both against the simulator; the
answers must be byte-identical, errors, nulls, extensions and key order included."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, is_leaf_type
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cli.server import BackgroundServer
from app.graphql.persisted import build_manifest
from app.graphql.schema import build_schema
from tests.gateway import GatewayFactory, set_faults

# Arguments the generator gives, with the variable types that carry them.
IDS = ["1", "2", "3", "4", "7", "999999", "x1", "0"]
FILTERS = ["{type: SYNCED}", "{type: UPLOADED}", '{os: "ubuntu"}', '{name: "nope"}']
FAULTS = [
    None,
    {"path": "/boot-resources/$", "method": "GET", "status": 400},
    {"path": r"/boot-resources/\d+/$", "method": "GET", "status": 404},
    {"path": r"/boot-resources/2/$", "method": "GET", "status": 400},
    {"path": "/boot-sources/$", "method": "GET", "status": 400},
    {"path": r"/selections/$", "method": "GET", "status": 400},
]
MAX_DEPTH = 4


@dataclass
class Document:
    """A query as it is drawn: its variables with their types and values, and fragments."""

    variables: dict[str, tuple[str, Any]] = field(default_factory=dict)
    fragments: list[str] = field(default_factory=list)

    def text(self, body: str) -> str:
        declared = ", ".join(f"${name}: {kind}" for name, (kind, _) in self.variables.items())
        head = f"query Q({declared})" if declared else "query Q"
        return " ".join([f"{head} {{ {body} }}", *self.fragments])

    def values(self) -> dict[str, Any]:
        return {name: value for name, (_, value) in self.variables.items()}


def _named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def _directive(data: st.DataObject, doc: Document) -> str:
    choice = data.draw(st.sampled_from(["", "", "", "skip", "include"]))
    if not choice:
        return ""
    if data.draw(st.booleans()):
        return f" @{choice}(if: {data.draw(st.sampled_from(['true', 'false']))})"
    name = f"c{len(doc.variables)}"
    doc.variables[name] = ("Boolean!", data.draw(st.booleans()))
    return f" @{choice}(if: ${name})"


def _arguments(data: st.DataObject, doc: Document, field_name: str, field_def: Any) -> str:
    if "id" in field_def.args:
        if data.draw(st.booleans()):
            name = f"i{len(doc.variables)}"
            doc.variables[name] = ("ID!", data.draw(st.sampled_from(IDS)))
            return f"(id: ${name})"
        return f'(id: "{data.draw(st.sampled_from(IDS))}")'
    if "filter" in field_def.args and data.draw(st.booleans()):
        if data.draw(st.booleans()):
            name = f"t{len(doc.variables)}"
            value = data.draw(st.sampled_from(["SYNCED", "UPLOADED", "GENERATED", None, "BAD"]))
            doc.variables[name] = ("BootResourceType", value)
            return f"(filter: {{type: ${name}}})"
        return f"(filter: {data.draw(st.sampled_from(FILTERS))})"
    return ""


def _selection(data: st.DataObject, doc: Document, type_: GraphQLObjectType, depth: int) -> str:
    """One selection set of `type_`: fields (aliased, with directives), inline fragments and
    named fragment spreads."""
    names = sorted(type_.fields)
    if depth >= MAX_DEPTH:
        names = [n for n in names if is_leaf_type(_named(type_.fields[n].type))]
    chosen = data.draw(st.lists(st.sampled_from([*names, "__typename"]), min_size=1, max_size=6))
    parts: list[str] = []
    for name in chosen:
        alias = data.draw(
            st.sampled_from(
                ["", "", "", "", f"{name}A: ", f"{name}: ", "a: "][:-1]
                if data.draw(st.sampled_from([True] * 9 + [False]))
                else ["a: "]
            )
        )
        if name == "__typename":
            parts.append(f"{alias}__typename{_directive(data, doc)}")
            continue
        field_def = type_.fields[name]
        text = f"{alias}{name}{_arguments(data, doc, name, field_def)}{_directive(data, doc)}"
        inner = _named(field_def.type)
        if isinstance(inner, GraphQLObjectType):
            text += f" {{ {_selection(data, doc, inner, depth + 1)} }}"
        parts.append(text)
    wrap = data.draw(st.sampled_from(["", "", "", "inline", "typed", "named"]))
    body = " ".join(parts)
    if wrap == "inline":
        return f"... {_directive(data, doc)} {{ {body} }}"
    if wrap == "typed":
        return f"... on {type_.name} {{ {body} }} {parts[0]}"
    if wrap == "named":
        name = f"F{len(doc.fragments)}"
        doc.fragments.append(f"fragment {name} on {type_.name} {{ {body} }}")
        return f"...{name}{_directive(data, doc)} {parts[-1]}"
    return body


Pair = tuple[BackgroundServer, BackgroundServer]
# MAAS answers kept for a microsecond: every read goes to the simulator, so faults reach both
# gateways alike, and nested fields wait for their reads (the plans' asynchronous path).
COLD = {f"cache_ttl_{family}": 1e-6 for family in ("boot_resources", "boot_resource")} | {
    f"cache_ttl_{family}": 1e-6 for family in ("boot_sources", "selections", "import_status")
}


def _pair(start_gateway: GatewayFactory, **overrides: Any) -> Pair:
    # No stored answers (every request executes), no stale answers (whose age would differ).
    common: dict[str, Any] = {"response_cache_ttl": 0, "cache_stale_ttl": 0, **overrides}
    return start_gateway(**common), start_gateway(graphql_max_plans=0, **common)


@pytest.fixture
def pair(start_gateway: GatewayFactory) -> Pair:
    return _pair(start_gateway)


@pytest.fixture
def cold_pair(start_gateway: GatewayFactory) -> Pair:
    return _pair(start_gateway, **COLD)


def _answer(server: BackgroundServer, body: dict[str, Any]) -> tuple[int, str, bytes]:
    response = httpx.post(f"{server.url}/graphql", json=body, timeout=30)
    return response.status_code, response.headers["content-type"], response.content


def _differential(
    data: st.DataObject,
    pair: Pair,
    simulator: BackgroundServer,
    schema: GraphQLSchema,
) -> None:
    doc = Document()
    query = schema.query_type
    assert query is not None
    selection = _selection(data, doc, query, 0)
    if data.draw(st.sampled_from([False] * 19 + [True])):
        selection += " noSuchField"  # a validation error
    text = doc.text(selection)
    fault = data.draw(st.sampled_from(FAULTS))
    body: dict[str, Any] = {"query": text, "variables": doc.values(), "operationName": "Q"}
    if data.draw(st.sampled_from([False] * 9 + [True])):
        body["extensions"] = {"cost": True}
    set_faults(simulator.url, *([fault] if fault else []))
    try:
        compiled, reference = pair
        expected = _answer(reference, body)
        assert _answer(compiled, body) == expected, text
    finally:
        set_faults(simulator.url)


@pytest.fixture(scope="module")
def real_schema() -> GraphQLSchema:
    return build_schema()._schema


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_compiled_answers_are_byte_identical_to_graphql_core_when_warm(
    data: st.DataObject,
    pair: Pair,
    simulator: BackgroundServer,
    real_schema: GraphQLSchema,
) -> None:
    _differential(data, pair, simulator, real_schema)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_compiled_answers_are_byte_identical_to_graphql_core_when_maas_answers_each_read(
    data: st.DataObject,
    cold_pair: Pair,
    simulator: BackgroundServer,
    real_schema: GraphQLSchema,
) -> None:
    _differential(data, cold_pair, simulator, real_schema)


def test_the_differential_runs_compiled_plans_and_the_reference_none(
    pair: Pair,
) -> None:
    compiled, reference = pair
    query = "query Q($s: Boolean!) { bootResources { id name sets @skip(if: $s) { version } } }"
    for skip in (True, False):
        assert _answer(compiled, {"query": query, "variables": {"s": skip}})[0] == 200
        _answer(reference, {"query": query, "variables": {"s": skip}})
    _answer(compiled, {"query": "{ __schema { queryType { name } } }"})
    compiled_plans = compiled.app.state.schema.plans  # type: ignore[attr-defined]
    reference_plans = reference.app.state.schema.plans  # type: ignore[attr-defined]
    assert compiled_plans.counts() == ({"compiled": 2, "fallback": 1}, 2)
    assert reference_plans.counts() == ({"compiled": 0, "fallback": 2}, 0)
    metrics = httpx.get(f"{compiled.url}/metrics").text
    assert 'maas_gateway_graphql_executions_total{executor="compiled"} 2.0' in metrics


def test_trusted_documents_are_compiled_before_the_first_request(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    sources = [
        ("q.graphql", "query Names { bootResources { id name } } fragment F on BootSource { id }"),
        ("m.graphql", "mutation Go { startImport { importing } }"),
        ("s.graphql", "query Sources($s: Boolean!) { bootSources { id @skip(if: $s) } }"),
    ]
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(build_manifest(sources)))
    gateway = start_gateway(
        graphql_persisted_documents="trusted", graphql_trusted_documents=str(manifest)
    )
    plans = gateway.app.state.schema.plans  # type: ignore[attr-defined]
    # Names, by its name and with none; the mutation and the variable @skip wait.
    assert plans.counts() == ({"compiled": 0, "fallback": 0}, 6)
    body = {"query": build_manifest(sources[:1])["operations"][0]["body"]}
    assert _answer(gateway, body)[0] == 200
    assert plans.counts() == ({"compiled": 1, "fallback": 0}, 6)
