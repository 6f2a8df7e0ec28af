"""@defer over multipart/mixed: the list first, then each resource's sets as its own detail
arrives from MAAS, a slow one holding back none of the others."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from graphql import FieldNode, OperationDefinitionNode, parse

from app.graphql.schema import _is_deferred
from tests.gateway import GatewayFactory, set_faults

DEFERRED = "{ bootResources { id name ... @defer { sets { id version } } } }"
ACCEPT = "multipart/mixed;deferSpec=20220824, application/graphql-response+json"
SLOW = "1"


def parts(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Each JSON part of a multipart/mixed answer, as it arrives."""
    boundary = re.search(r'boundary="?([^";]+)"?', response.headers["content-type"])
    assert boundary is not None, response.headers["content-type"]
    delimiter = f"--{boundary.group(1)}"
    buffer = ""
    for chunk in response.iter_text():
        buffer += chunk
        while True:
            start = buffer.find(delimiter)
            end = buffer.find(delimiter, start + len(delimiter))
            if start < 0 or end < 0:
                break
            part, buffer = buffer[start + len(delimiter) : end], buffer[end:]
            _, _, body = part.partition("\r\n\r\n")
            if body.strip():
                yield json.loads(body)


def test_each_resources_sets_follow_as_its_detail_arrives(start_gateway: GatewayFactory) -> None:
    # One resource's detail never answers until the gateway gives up on it (maas_timeout).
    gateway = start_gateway(maas_timeout=5, maas_retries=0, response_cache_ttl=0)
    set_faults(gateway_simulator(gateway), {"path": rf"/boot-resources/{SLOW}/$", "hang": True})
    body = {"query": DEFERRED}
    with httpx.stream(
        "POST", f"{gateway.url}/graphql", json=body, headers={"accept": ACCEPT}, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("multipart/mixed")
        stream = parts(response)
        initial = next(stream)
        resources = initial["data"]["bootResources"]
        assert resources and all("sets" not in r for r in resources), initial
        assert initial["hasNext"] is True
        pending = {p["id"]: p["path"][1] for p in initial["pending"]}
        arrived: list[str] = []
        slow_error = None
        for payload in stream:
            for item in payload.get("incremental", []):
                arrived.append(resources[pending[item["id"]]]["id"])
            for done in payload.get("completed", []):
                if "errors" in done:
                    slow_error = resources[pending[done["id"]]]["id"], done["errors"]
            if not payload["hasNext"]:
                break
    # Every other resource's sets came while the slow one was still on its way; it failed alone.
    assert sorted(arrived) == sorted(r["id"] for r in resources if r["id"] != SLOW)
    assert slow_error is not None and slow_error[0] == SLOW
    assert slow_error[1][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"


def gateway_simulator(gateway: Any) -> str:
    settings = gateway.app.state.settings
    url: str = settings.maas_url.removesuffix("/MAAS")
    return url


@pytest.mark.parametrize(
    ("fragment", "deferred"),
    [
        ("... @defer { sets { id } }", True),
        ('... @defer(label: "sets") { sets { id } }', True),
        ("... @defer(if: true) { sets { id } }", True),
        ("... @defer(if: false) { sets { id } }", False),
        ("... @defer(if: $later) { sets { id } }", False),  # may run now: the reads settle
        ("... { sets { id } }", False),
    ],
)
def test_only_fragments_surely_deferred_let_the_list_go_first(
    fragment: str, deferred: bool
) -> None:
    document = parse(f"{{ bootResources {{ id {fragment} }} }}")
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    resources = operation.selection_set.selections[0]
    assert isinstance(resources, FieldNode) and resources.selection_set is not None
    assert _is_deferred(resources.selection_set.selections[1]) is deferred


def test_a_deferred_list_beside_another_root_field_still_completes(
    start_gateway: GatewayFactory,
) -> None:
    # bootResource(id) reads a detail the deferred list also reads: it must not wait for the
    # first payload, which waits for it.
    gateway = start_gateway(response_cache_ttl=0)
    query = (
        '{ one: bootResource(id: "1") { sets { id } } '
        "bootResources { id ... @defer { sets { id } } } }"
    )
    with httpx.stream(
        "POST",
        f"{gateway.url}/graphql",
        json={"query": query},
        headers={"accept": ACCEPT},
        timeout=60,
    ) as response:
        payloads = list(parts(response))
    assert payloads[0]["data"]["one"]["sets"], payloads[0]
    assert payloads[-1]["hasNext"] is False
    delivered = sum(len(p.get("incremental", [])) for p in payloads[1:])
    assert delivered == len(payloads[0]["data"]["bootResources"])
