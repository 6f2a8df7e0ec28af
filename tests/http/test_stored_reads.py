"""Repeated REST reads answered from stored bytes before routing, and never after a write."""

from __future__ import annotations

import httpx

from app.cli.server import BackgroundServer
from tests.gateway import reset_counts, upstream_counts


def test_a_repeated_read_is_answered_without_upstream_calls(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    first = api.get("/boot-resources", params={"expand": "sets"})
    assert first.status_code == 200
    reset_counts(simulator.url)
    second = api.get("/boot-resources", params={"expand": "sets"})
    assert second.headers["x-cache"] == "HIT"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["cache-control"] == first.headers["cache-control"]
    assert second.headers["content-type"] == first.headers["content-type"]
    assert int(second.headers["content-length"]) == len(first.content)
    assert upstream_counts(simulator.url) == {}


def test_a_stored_read_answers_304_to_a_matching_etag(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    etag = api.get("/boot-sources").headers["etag"]
    api.get("/boot-sources")
    reset_counts(simulator.url)
    response = api.get("/boot-sources", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["x-cache"] == "HIT"
    assert upstream_counts(simulator.url) == {}


def test_the_query_string_is_part_of_what_is_stored(api: httpx.Client) -> None:
    everything = api.get("/boot-resources").json()
    uploaded = api.get("/boot-resources", params={"type": "uploaded"}).json()
    assert uploaded
    assert len(uploaded) < len(everything)
    assert api.get("/boot-resources", params={"type": "uploaded"}).json() == uploaded


def test_a_write_makes_stored_reads_miss(api: httpx.Client) -> None:
    before = api.get("/boot-resources", params={"expand": "sets"})
    assert api.get("/boot-resources", params={"expand": "sets"}).headers["x-cache"] == "HIT"
    victim = next(r for r in before.json() if r["type"] == "uploaded")
    assert api.delete(f"/boot-resources/{victim['id']}").status_code == 204
    after = api.get("/boot-resources", params={"expand": "sets"})
    assert after.headers["x-cache"] == "MISS"
    assert victim["id"] not in {r["id"] for r in after.json()}
    assert after.headers["etag"] != before.headers["etag"]
    assert api.get(f"/boot-resources/{victim['id']}").status_code == 404


def test_errors_are_never_stored(api: httpx.Client, simulator: BackgroundServer) -> None:
    assert api.get("/boot-resources/999999").status_code == 404
    reset_counts(simulator.url)
    assert api.get("/boot-resources/999999").status_code == 404
    assert upstream_counts(simulator.url) == {"GET /MAAS/api/2.0/boot-resources/999999/": 1}
