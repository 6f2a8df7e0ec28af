"""GraphQL errors carry stable codes and leak nothing; abusive documents are refused clearly."""

from __future__ import annotations

import time

from app.cli.server import BackgroundServer
from tests.conftest import USER_KEY
from tests.gateway import WRONG_KEY, GatewayFactory, gql, reset_counts, set_faults, upstream_counts


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def test_forbidden_upstream_maps_to_forbidden_without_leaks(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(api_key=USER_KEY)
    response = gql(gateway.url, "{ bootSources { id } }")
    body = response.json()
    assert codes(body) == ["FORBIDDEN"]
    text = response.text
    assert simulator.url not in text
    assert "/MAAS/" not in text
    assert USER_KEY.split(":")[2] not in text
    assert "Traceback" not in text
    # A non-admin may still read boot resources (maas-api.md §4.4).
    assert "errors" not in gql(gateway.url, "{ bootResources { id } }").json()


def test_wrong_credentials_map_to_unauthenticated(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(api_key=WRONG_KEY)
    body = gql(gateway.url, "{ bootResources { id } }").json()
    assert codes(body) == ["UNAUTHENTICATED"]


def test_upstream_down_maps_to_unavailable(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(maas_retries=0)
    set_faults(simulator.url, {"path": "boot-sources", "status": 503})
    body = gql(gateway.url, "{ bootSources { id } }").json()
    assert codes(body) == ["UPSTREAM_UNAVAILABLE"]


def test_upstream_hang_maps_to_timeout(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(maas_timeout=0.5, maas_retries=0)
    set_faults(simulator.url, {"path": "boot-sources", "hang": True})
    started = time.monotonic()
    body = gql(gateway.url, "{ bootSources { id } }").json()
    assert codes(body) == ["UPSTREAM_TIMEOUT"]
    assert time.monotonic() - started < 10


def test_malformed_upstream_json_maps_to_bad_response(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(maas_retries=0)
    set_faults(simulator.url, {"path": "boot-sources", "malformed": True})
    body = gql(gateway.url, "{ bootSources { id } }").json()
    assert codes(body) == ["UPSTREAM_BAD_RESPONSE"]


def test_stale_entry_is_served_when_maas_fails_and_says_so(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(
        cache_ttl_boot_sources=0.3, response_cache_ttl=0.3, cache_stale_ttl=60, maas_retries=0
    )
    fresh = gql(gateway.url, "{ bootSources { id url } }").json()
    assert "extensions" not in fresh
    time.sleep(0.4)
    set_faults(simulator.url, {"path": "boot-sources", "status": 503})
    stale = gql(gateway.url, "{ bootSources { id url } }").json()
    assert stale["data"] == fresh["data"]
    assert stale["extensions"]["cache"]["stale"] is True
    assert stale["extensions"]["cache"]["staleAgeSeconds"] >= 0.3


def test_stale_entry_is_not_served_past_its_bound(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(
        cache_ttl_boot_sources=0.2, response_cache_ttl=0.2, cache_stale_ttl=0.2, maas_retries=0
    )
    gql(gateway.url, "{ bootSources { id } }")
    time.sleep(0.5)
    set_faults(simulator.url, {"path": "boot-sources", "status": 503})
    assert codes(gql(gateway.url, "{ bootSources { id } }").json()) == ["UPSTREAM_UNAVAILABLE"]


def test_deep_documents_are_refused(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(graphql_max_depth=3)
    body = gql(
        gateway.url,
        "{ bootSources { selections { bootSource { selections { id } } } } }",
    ).json()
    assert codes(body) == ["GRAPHQL_VALIDATION"]
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


def test_alias_bombs_are_refused(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(graphql_max_aliases=5)
    reset_counts(simulator.url)
    document = "{ " + " ".join(f"a{i}: bootSources {{ id }}" for i in range(20)) + " }"
    body = gql(gateway.url, document).json()
    assert codes(body) == ["GRAPHQL_VALIDATION"]
    assert upstream_counts(simulator.url) == {}


def test_token_floods_are_refused(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(graphql_max_tokens=50)
    document = "{ bootSources { " + " ".join(["id"] * 200) + " } }"
    body = gql(gateway.url, document).json()
    assert codes(body) == ["GRAPHQL_VALIDATION"]


def test_fan_out_beyond_the_cap_is_refused(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(max_fanout=2)
    body = gql(gateway.url, "{ bootResources { id sets { version } } }").json()
    assert "PAYLOAD_TOO_LARGE" in codes(body)
    assert "narrow it with a filter" in body["errors"][0]["message"]


def test_unknown_fields_get_a_validation_code(gateway: BackgroundServer) -> None:
    body = gql(gateway.url, "{ bootResources { nope } }").json()
    assert codes(body) == ["GRAPHQL_VALIDATION"]


def test_validation_cache_hits_across_requests(gateway: BackgroundServer) -> None:
    cached = gateway.app.state.schema.documents.validate  # type: ignore[attr-defined]
    document = "{ bootSources { id url } __typename }"
    gql(gateway.url, document)
    before = cached.cache_info()
    for variant in range(3):
        gql(gateway.url, document, {"unused": variant})
    after = cached.cache_info()
    assert after.hits - before.hits >= 3
    assert after.misses == before.misses


def test_a_failed_detail_read_fails_only_its_own_resource_and_is_not_repeated(
    start_gateway: GatewayFactory, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(
        maas_retries=0, response_cache_ttl=0, cache_ttl_boot_resource=0.2, cache_stale_ttl=0.05
    )
    query = "{ bootResources { id latestSet { version } } }"
    before = gql(gateway.url, query).json()["data"]["bootResources"]
    ids = [r["id"] for r in before]
    victim = next(r["id"] for r in before if r["latestSet"] is not None)
    time.sleep(0.4)  # the details are read again, none of them servable stale
    set_faults(simulator.url, {"path": f"/boot-resources/{victim}/$", "status": 503})
    reset_counts(simulator.url)
    body = gql(gateway.url, query).json()
    after = body["data"]["bootResources"]
    assert [r["id"] for r in after] == ids
    assert {r["id"]: r["latestSet"] for r in after} == {
        r["id"]: None if r["id"] == victim else r["latestSet"] for r in before
    }
    [error] = body["errors"]
    assert error["path"] == ["bootResources", ids.index(victim), "latestSet"]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    # The failed read is reported, not made a second time by the field that needed it.
    assert upstream_counts(simulator.url)[f"GET /MAAS/api/2.0/boot-resources/{victim}/"] == 1
