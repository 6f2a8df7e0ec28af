"""Ensuring a selection over GraphQL and REST: created, updated, or left alone with no MAAS
write; MAAS's own default selection is an ordinary match; concurrent ensures make one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from app.cli.server import BackgroundServer
from tests.gateway import GatewayFactory, reset_counts, upstream_counts

ENSURE = """mutation($sid: ID!, $input: EnsureBootSourceSelectionInput!) {
  ensureBootSourceSelection(bootSourceId: $sid, input: $input) {
    outcome bootSourceSelection { id os release arches subarches labels }
    errors { code field message } } }"""


def ensure(url: str, source: str, **input: Any) -> dict[str, Any]:
    body = {"query": ENSURE, "variables": {"sid": source, "input": input}}
    answer = httpx.post(f"{url}/graphql", json=body, timeout=30).json()
    payload: dict[str, Any] = answer["data"]["ensureBootSourceSelection"]
    return payload


def writes(simulator: BackgroundServer) -> dict[str, int]:
    counts = upstream_counts(simulator.url)
    return {k: n for k, n in counts.items() if not k.startswith("GET ")}


def selections(url: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = httpx.get(f"{url}/api/v1/boot-sources/1/selections").json()
    return listed


def test_ensure_creates_then_changes_nothing_then_updates(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    url = start_gateway().url
    first = ensure(url, "1", os="ubuntu", release="focal")
    assert first["errors"] == [] and first["outcome"] == "CREATED"
    made = first["bootSourceSelection"]
    assert (made["arches"], made["subarches"], made["labels"]) == (["*"], ["*"], ["*"])

    reset_counts(simulator.url)
    again = ensure(url, "1", os="ubuntu", release="focal", arches=["*"])
    assert again["outcome"] == "UNCHANGED" and again["bootSourceSelection"] == made
    assert writes(simulator) == {}  # nothing written to MAAS

    changed = ensure(url, "1", os="ubuntu", release="focal", arches=["amd64"])
    assert changed["outcome"] == "UPDATED"
    assert changed["bootSourceSelection"]["id"] == made["id"]
    assert changed["bootSourceSelection"]["arches"] == ["amd64"]
    assert [s["arches"] for s in selections(url) if s["release"] == "focal"] == [["amd64"]]


def test_the_default_selection_maas_made_is_an_ordinary_match(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    url = start_gateway().url
    default = next(s for s in selections(url) if s["os"] == "ubuntu")
    reset_counts(simulator.url)
    lists = {k: default[k] for k in ("arches", "subarches", "labels")}
    # Order does not matter: ["arm64", "amd64"] is the same selection.
    lists["arches"] = list(reversed(lists["arches"]))
    found = ensure(url, "1", os="ubuntu", release=default["release"], **lists)
    assert found["outcome"] == "UNCHANGED"
    assert found["bootSourceSelection"]["id"] == str(default["id"])
    assert writes(simulator) == {}


def test_concurrent_ensures_of_one_key_make_one_selection(start_gateway: GatewayFactory) -> None:
    url = start_gateway().url

    async def many() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            body = {"arches": ["amd64"]}
            answers = await asyncio.gather(
                *(
                    client.put("/api/v1/boot-sources/1/selections/ubuntu/focal", json=body)
                    for _ in range(8)
                )
            )
        return [{"status": a.status_code, **a.json()} for a in answers]

    answers = asyncio.run(many())
    assert sorted(a["outcome"] for a in answers) == ["created"] + ["unchanged"] * 7
    assert {a["status"] for a in answers if a["outcome"] == "created"} == {201}
    assert {a["id"] for a in answers} == {answers[0]["id"]}
    assert len([s for s in selections(url) if s["release"] == "focal"]) == 1


def test_rest_ensure_refuses_what_maas_refuses(start_gateway: GatewayFactory) -> None:
    url = start_gateway().url
    refused = httpx.put(f"{url}/api/v1/boot-sources/1/selections/ubuntu/warty", json={})
    assert refused.status_code == 400
    assert refused.json()["error"]["details"]["fields"]["os"]
    missing = httpx.put(f"{url}/api/v1/boot-sources/99/selections/ubuntu/focal", json={})
    assert missing.status_code == 404
