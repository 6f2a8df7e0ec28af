"""HTTP caching on REST reads: ETag and 304, Cache-Control from the TTLs, X-Cache from the cache."""

from __future__ import annotations

import time

import httpx
import pytest

from app.cli.server import BackgroundServer
from tests.gateway import set_faults


def test_reads_carry_a_strong_etag_of_the_body(api: httpx.Client) -> None:
    first = api.get("/boot-resources")
    second = api.get("/boot-resources")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert second.headers["etag"] == etag
    assert second.content == first.content
    other = api.get("/boot-sources")
    assert other.headers["etag"] != etag


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"nope", {etag}', '"a",{etag} , "b"', "*"],
)
def test_a_matching_if_none_match_gets_304(api: httpx.Client, if_none_match: str) -> None:
    fresh = api.get("/boot-resources")
    etag = fresh.headers["etag"]
    response = api.get(
        "/boot-resources", headers={"If-None-Match": if_none_match.format(etag=etag)}
    )
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == fresh.headers["cache-control"]
    assert response.headers["x-cache"] == "HIT"


def test_a_different_if_none_match_gets_the_body(api: httpx.Client) -> None:
    response = api.get("/boot-resources", headers={"If-None-Match": '"stale-tag"'})
    assert response.status_code == 200
    assert response.json()


def test_the_etag_changes_when_the_data_changes(api: httpx.Client) -> None:
    before = api.get("/boot-sources")
    api.post("/boot-sources", json={"url": "http://e.example.com/", "keyring_filename": "/k"})
    after = api.get("/boot-sources", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]


def test_cache_control_is_private_with_the_family_ttl(start_gateway) -> None:
    gateway = start_gateway(
        cache_ttl_boot_resources=30,
        cache_ttl_boot_resource=60,
        cache_ttl_boot_sources=120,
        cache_ttl_selections=90,
        cache_ttl_import_status=5,
    )
    with httpx.Client(base_url=f"{gateway.url}/api/v1") as api:
        resource_id = api.get("/boot-resources").json()[0]["id"]
        source_id = api.get("/boot-sources").json()[0]["id"]
        expected = {
            "/boot-resources": 30,
            f"/boot-resources/{resource_id}": 60,
            "/boot-resources?expand=sets": 30,
            "/boot-resources/import": 5,
            "/boot-sources": 120,
            f"/boot-sources/{source_id}": 120,
            f"/boot-sources/{source_id}/selections": 90,
        }
        for path, ttl in expected.items():
            response = api.get(path)
            assert response.status_code == 200, path
            assert response.headers["cache-control"] == f"private, max-age={ttl}", path
            assert response.headers["vary"] == "Authorization"


def test_writes_carry_no_caching_headers(api: httpx.Client) -> None:
    response = api.post(
        "/boot-sources", json={"url": "http://f.example.com/", "keyring_filename": "/k"}
    )
    assert response.status_code == 201
    assert "etag" not in response.headers
    assert "x-cache" not in response.headers


def test_x_cache_says_miss_then_hit(api: httpx.Client) -> None:
    assert api.get("/boot-sources").headers["x-cache"] == "MISS"
    assert api.get("/boot-sources").headers["x-cache"] == "HIT"
    resource_id = api.get("/boot-resources").json()[0]["id"]
    assert api.get(f"/boot-resources/{resource_id}").headers["x-cache"] == "MISS"
    assert api.get(f"/boot-resources/{resource_id}").headers["x-cache"] == "HIT"


def test_x_cache_says_stale_when_maas_fails_after_expiry(
    start_gateway, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(cache_ttl_boot_resources=0.2, cache_stale_ttl=60, maas_retries=0)
    with httpx.Client(base_url=f"{gateway.url}/api/v1") as api:
        fresh = api.get("/boot-resources")
        assert fresh.headers["x-cache"] == "MISS"
        time.sleep(0.3)
        set_faults(simulator.url, {"path": r"/boot-resources/$", "method": "GET", "status": 503})
        stale = api.get("/boot-resources")
        assert stale.status_code == 200
        assert stale.headers["x-cache"] == "STALE"
        assert stale.content == fresh.content
        assert stale.headers["etag"] == fresh.headers["etag"]
