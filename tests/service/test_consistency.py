"""Writes racing reads: once a write's response is in, no read that starts later, through
REST or GraphQL (response cache and entity cache in play), answers from before the write."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings, running_gateway

SOURCE = 1
"""The source whose selections change; its URL stays, as MAAS offers images only from it."""
URL_SOURCE = 2
"""The source the test makes and whose URL the writer keeps changing."""
RELEASES = ("focal",)
"""Selections the writer makes and deletes again (releases the simulator has images for)."""
DOOMED = (1, 2, 7, 8, 13, 17)
"""Boot resources the writer deletes, one after another (synced and uploaded ones)."""
ROUNDS = 36
READERS_PER_KIND = 2
_VERSION = re.compile(r"http://v(\d+)\.example\.com/")


@dataclass
class Write:
    kind: str  # "url", "create", "delete-selection" or "delete-resource"
    value: int
    started: float
    ended: float


@dataclass
class Read:
    kind: str
    started: float
    ended: float
    version: int | None = None
    selections: set[int] | None = None
    resources: set[int] | None = None
    resource: tuple[int, bool] | None = None
    """(id, present) for a single-resource read."""


@dataclass
class Log:
    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    done: bool = False


def version_of(url: str) -> int:
    match = _VERSION.fullmatch(url)
    return int(match.group(1)) if match else 0


async def gql(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


async def read_rest_source(client: httpx.AsyncClient, read: Read) -> None:
    response = await client.get(f"/api/v1/boot-sources/{URL_SOURCE}")
    response.raise_for_status()
    read.version = version_of(response.json()["url"])


async def read_rest_sources(client: httpx.AsyncClient, read: Read) -> None:
    response = await client.get("/api/v1/boot-sources")
    response.raise_for_status()
    read.version = version_of(next(s["url"] for s in response.json() if s["id"] == URL_SOURCE))


async def read_rest_selections(client: httpx.AsyncClient, read: Read) -> None:
    response = await client.get(f"/api/v1/boot-sources/{SOURCE}/selections")
    response.raise_for_status()
    read.selections = {s["id"] for s in response.json()}


async def read_gql_source(client: httpx.AsyncClient, read: Read) -> None:
    query = """query($id: ID!, $other: ID!) {
      bootSource(id: $id) { selections { id } } other: bootSource(id: $other) { url } }"""
    data = await gql(client, query, id=str(SOURCE), other=str(URL_SOURCE))
    read.version = version_of(data["other"]["url"])
    read.selections = {int(s["id"]) for s in data["bootSource"]["selections"]}


async def read_gql_sources(client: httpx.AsyncClient, read: Read) -> None:
    sources = (await gql(client, "{ bootSources { id url } }"))["bootSources"]
    read.version = version_of(next(s["url"] for s in sources if int(s["id"]) == URL_SOURCE))


async def read_rest_resources(client: httpx.AsyncClient, read: Read) -> None:
    response = await client.get("/api/v1/boot-resources")
    response.raise_for_status()
    read.resources = {r["id"] for r in response.json()}


async def read_gql_resources(client: httpx.AsyncClient, read: Read) -> None:
    resources = (await gql(client, "{ bootResources { id } }"))["bootResources"]
    read.resources = {int(r["id"]) for r in resources}


_next_doomed = itertools.cycle(DOOMED)


async def read_gql_resource(client: httpx.AsyncClient, read: Read) -> None:
    id = next(_next_doomed)
    data = await gql(client, "query($id: ID!) { bootResource(id: $id) { id } }", id=str(id))
    read.resource = (id, data["bootResource"] is not None)


async def read_rest_resource(client: httpx.AsyncClient, read: Read) -> None:
    id = next(_next_doomed)
    response = await client.get(f"/api/v1/boot-resources/{id}")
    assert response.status_code in (200, 404), response.text
    read.resource = (id, response.status_code == 200)


READERS: dict[str, Callable[[httpx.AsyncClient, Read], Awaitable[None]]] = {
    "rest source": read_rest_source,
    "rest sources": read_rest_sources,
    "rest selections": read_rest_selections,
    "graphql source": read_gql_source,
    "graphql sources": read_gql_sources,
    "rest resources": read_rest_resources,
    "graphql resources": read_gql_resources,
    "graphql resource": read_gql_resource,
    "rest resource": read_rest_resource,
}


async def reader(client: httpx.AsyncClient, kind: str, log: Log) -> None:
    while not log.done:
        read = Read(kind, time.monotonic(), 0.0)
        await READERS[kind](client, read)
        read.ended = time.monotonic()
        log.reads.append(read)


async def write_url(client: httpx.AsyncClient, n: int) -> None:
    url = f"http://v{n}.example.com/"
    if n % 2:
        response = await client.patch(f"/api/v1/boot-sources/{URL_SOURCE}", json={"url": url})
        response.raise_for_status()
    else:
        query = """mutation($id: ID!, $url: String!) {
          updateBootSource(id: $id, input: {url: $url}) { errors { message } } }"""
        data = await gql(client, query, id=str(URL_SOURCE), url=url)
        assert data["updateBootSource"]["errors"] == []


async def create_selection(client: httpx.AsyncClient, n: int) -> int:
    release = RELEASES[n % len(RELEASES)]
    if n % 2:
        response = await client.post(
            f"/api/v1/boot-sources/{SOURCE}/selections", json={"os": "ubuntu", "release": release}
        )
        assert response.status_code == 201, response.text
        id: int = response.json()["id"]
        return id
    query = """mutation($source: ID!, $release: String!) {
      createBootSourceSelection(bootSourceId: $source, input: {os: "ubuntu", release: $release})
      { bootSourceSelection { id } errors { message } } }"""
    created = (await gql(client, query, source=str(SOURCE), release=release))[
        "createBootSourceSelection"
    ]
    assert created["errors"] == [], created
    return int(created["bootSourceSelection"]["id"])


async def delete_selection(client: httpx.AsyncClient, n: int, id: int) -> None:
    if n % 2:
        response = await client.delete(f"/api/v1/boot-sources/{SOURCE}/selections/{id}")
        assert response.status_code == 204, response.text
        return
    query = """mutation($source: ID!, $id: ID!) {
      deleteBootSourceSelection(bootSourceId: $source, id: $id) { errors { message } } }"""
    data = await gql(client, query, source=str(SOURCE), id=str(id))
    assert data["deleteBootSourceSelection"]["errors"] == []


async def delete_resource(client: httpx.AsyncClient, n: int, id: int) -> None:
    if n % 2:
        response = await client.delete(f"/api/v1/boot-resources/{id}")
        assert response.status_code == 204, response.text
        return
    query = "mutation($id: ID!) { deleteBootResource(id: $id) { errors { message } } }"
    assert (await gql(client, query, id=str(id)))["deleteBootResource"]["errors"] == []


async def writer(client: httpx.AsyncClient, log: Log) -> None:
    doomed = iter(DOOMED)
    selection: int | None = None
    for n in range(1, ROUNDS + 1):
        await asyncio.sleep(0.02)  # let reads of the previous state pile up in between
        started = time.monotonic()
        if n % 3 == 0:
            if selection is None:
                selection = await create_selection(client, n)
                kind, value = "create", selection
            else:
                await delete_selection(client, n, selection)
                kind, value, selection = "delete-selection", selection, None
        elif n % 5 == 0 and (resource := next(doomed, None)) is not None:
            await delete_resource(client, n, resource)
            kind, value = "delete-resource", resource
        else:
            await write_url(client, n)
            kind, value = "url", n
        log.writes.append(Write(kind, value, started, time.monotonic()))
    log.done = True


async def race(url: str) -> Log:
    log = Log()
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        source = {"url": "http://v0.example.com/", "keyring_filename": "/k.gpg"}
        created = await client.post("/api/v1/boot-sources", json=source)
        assert created.status_code == 201 and created.json()["id"] == URL_SOURCE, created.text
        readers = [reader(client, kind, log) for kind in READERS for _ in range(READERS_PER_KIND)]
        await asyncio.gather(writer(client, log), *readers)
    return log


def violations(log: Log) -> tuple[list[str], int]:
    """Reads that started after a write ended but missed it, and how many reads were checked."""
    problems: list[str] = []
    checked = 0
    for read in log.reads:
        before = [w for w in log.writes if w.ended < read.started]
        if not before:
            continue
        checked += 1
        urls = [w.value for w in before if w.kind == "url"]
        if read.version is not None and urls and read.version < max(urls):
            problems.append(f"{read.kind} saw url v{read.version} after v{max(urls)} was written")
        if read.selections is not None:
            for w in before:
                deleted = [
                    d for d in log.writes if d.kind == "delete-selection" and d.value == w.value
                ]
                if (
                    w.kind == "create"
                    and w.value not in read.selections
                    and (not deleted or deleted[0].started > read.ended)
                ):
                    problems.append(f"{read.kind} missed created selection {w.value}")
                if w.kind == "delete-selection" and w.value in read.selections:
                    problems.append(f"{read.kind} saw deleted selection {w.value}")
        gone = {w.value for w in before if w.kind == "delete-resource"}
        if read.resources is not None and read.resources & gone:
            problems.append(f"{read.kind} saw deleted resources {read.resources & gone}")
        if read.resource is not None and read.resource[1] and read.resource[0] in gone:
            problems.append(f"{read.kind} saw deleted resource {read.resource[0]}")
    return problems, checked


def test_no_read_started_after_a_write_returns_data_from_before_it(
    simulator: BackgroundServer,
) -> None:
    settings = gateway_settings(simulator.url, ADMIN_KEY)  # default TTLs: both caches in play
    with running_gateway(settings) as gateway:
        log = asyncio.run(race(gateway.url))
    problems, checked = violations(log)
    assert not problems, problems[:10]
    kinds = {w.kind for w in log.writes}
    assert kinds == {"url", "create", "delete-selection", "delete-resource"}
    assert checked > 5 * len(READERS)
