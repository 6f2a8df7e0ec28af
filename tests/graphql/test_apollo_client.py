"""Apollo Client 4 against a real gateway: HttpLink with its normalized cache, its error
handling, PersistedQueryLink (POST, then GET with the hash alone), apollo-upload-client, and
@defer over multipart/mixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.gateway import GatewayFactory, write_tokens
from tests.graphql.node import run_client


def test_apollo_client_queries_caches_persists_uploads_and_reports_errors(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    tokens = write_tokens(tmp_path / "tokens", writer="read,write", reader="read")
    gateway = start_gateway(tokens_file=str(tmp_path / "tokens"))
    lines = run_client("apollo.mjs", f"{gateway.url}/graphql", tokens["writer"], tokens["reader"])
    cases: dict[str, dict[str, Any]] = {line.pop("case"): line for line in lines}

    cached = cases["http-link"]
    assert cached["resources"] > 0 and cached["sets"] > 0 and cached["files"] > 0
    # Every set and file is its own normalized entry: none merged into another.
    assert (cached["sets"], cached["files"]) == (cached["expectedSets"], cached["expectedFiles"])

    # GraphQL errors with their codes, not opaque ServerErrors: token refresh can key on them.
    assert cases["unauthenticated"] == {"kind": "graphql", "codes": ["UNAUTHENTICATED"]}
    assert cases["validation"] == {"kind": "graphql", "codes": ["GRAPHQL_VALIDATION"]}
    assert cases["forbidden"] == {"kind": "graphql", "codes": ["FORBIDDEN"]}

    first, by_get, again = cases["persisted-queries"]["rounds"]
    assert first["requests"] == [
        {"method": "POST", "withText": False},  # PERSISTED_QUERY_NOT_FOUND
        {"method": "POST", "withText": True},
    ]
    assert by_get["requests"] == again["requests"] == [{"method": "GET", "withText": False}]
    assert first["sources"] == by_get["sources"] == again["sources"] == 1

    upload = cases["upload"]
    assert upload["errors"] == []
    assert upload["file"]["sha256"] == upload["sha256"] and upload["file"]["complete"] is True
    assert upload["file"]["size"] == 4096

    # @defer: the list first, with no sets yet; the last emission has every resource's sets.
    emissions = cases["defer"]["emissions"]
    assert len(emissions) >= 2, emissions
    first, last = emissions[0], emissions[-1]
    assert first["resources"] > 0 and first["withSets"] == 0 and not first["complete"]
    assert last == {
        "resources": first["resources"],
        "withSets": first["resources"],
        "complete": True,
    }
