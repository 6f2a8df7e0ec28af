"""Field and value suggestions ("Did you mean ...?") tell only a caller who may see the schema:
never while introspection is off, never to a caller who showed no credential."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.gateway import GatewayFactory, bearer, write_tokens

TYPO = "{ bootSourcs { id } }"
ENUM = "query ($t: BootResourceType) { bootResources(filter: {type: $t}) { id } }"


def messages(url: str, query: str, headers: dict[str, str], **variables: object) -> str:
    body = {"query": query, "variables": variables}
    answer = httpx.post(f"{url}/graphql", json=body, headers=headers, timeout=30).json()
    return " ".join(e["message"] for e in answer["errors"])


@pytest.mark.parametrize(
    ("introspection", "credential", "suggested"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
def test_suggestions_only_where_the_schema_is_open_to_the_caller(
    start_gateway: GatewayFactory,
    tmp_path: Path,
    introspection: bool,
    credential: bool,
    suggested: bool,
) -> None:
    tokens = write_tokens(tmp_path / "tokens", reader="read")
    url = start_gateway(
        tokens_file=str(tmp_path / "tokens"),
        anonymous_scopes="read",
        graphql_introspection=introspection,
    ).url
    headers = bearer(tokens["reader"]) if credential else {}
    field = messages(url, TYPO, headers)
    value = messages(url, ENUM, headers, t="SYNCD")
    assert "bootSourcs" in field and "BootResourceType" in value  # still a clear error
    for said in (field, value):
        assert ("Did you mean" in said) is suggested, said
