"""Passthrough mode: each caller's own MAAS key signs its calls; MAAS decides; no sharing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.cli.server import BackgroundServer
from app.core.settings import Settings
from app.maas.auth import MaasCredentials
from tests.conftest import ADMIN_KEY, USER_KEY
from tests.gateway import (
    WRONG_KEY,
    bearer,
    gateway_settings,
    gql,
    reset_counts,
    running_gateway,
    set_faults,
    upstream_counts,
)
from tests.graphql.documents import fragment_fan_out

SOURCES = "{ bootSources { id url } }"
RESOURCES = "{ bootResources { id name } }"
DENIED = {"message": "missing or invalid credentials", "code": "UNAUTHENTICATED"}


@pytest.fixture
def gateway(simulator: BackgroundServer) -> Iterator[BackgroundServer]:
    """A passthrough gateway with no MAAS key of its own: only callers' keys can sign."""
    settings = Settings(
        _env_file=None,
        maas_url=f"{simulator.url}/MAAS",
        auth_mode="passthrough",
        rate_limit_per_second=0,
    )
    with running_gateway(settings) as server:
        yield server


def rest(gateway: BackgroundServer, method: str, path: str, key: str | None) -> httpx.Response:
    headers = bearer(key) if key else {}
    return httpx.request(method, f"{gateway.url}/api/v1{path}", headers=headers, timeout=30)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if "error" in body:
        return {"message": body["error"]["message"], "code": body["error"]["code"]}
    [error] = body["errors"]
    return {"message": error["message"], "code": error["extensions"]["code"]}


def test_each_caller_acts_with_its_own_maas_key(gateway: BackgroundServer) -> None:
    admin = rest(gateway, "GET", "/boot-sources", ADMIN_KEY)
    assert admin.status_code == 200
    assert admin.json()
    user = rest(gateway, "GET", "/boot-sources", USER_KEY)
    assert user.status_code == 403
    assert error_of(user)["code"] == "FORBIDDEN"
    # Both may read boot resources (maas-api.md §4.4).
    assert rest(gateway, "GET", "/boot-resources", USER_KEY).status_code == 200
    assert rest(gateway, "POST", "/boot-resources/import", USER_KEY).status_code == 403
    assert rest(gateway, "POST", "/boot-resources/import", ADMIN_KEY).status_code == 202


def test_graphql_reports_maas_refusals_as_forbidden(gateway: BackgroundServer) -> None:
    user = gql(gateway.url, SOURCES, headers=bearer(USER_KEY))
    assert error_of(user)["code"] == "FORBIDDEN"
    assert user.json()["data"] is None
    admin = gql(gateway.url, SOURCES, headers=bearer(ADMIN_KEY))
    assert admin.json()["data"]["bootSources"]


@pytest.mark.parametrize(
    "key",
    [None, "not-a-maas-key", "a:b", WRONG_KEY],
    ids=["missing", "malformed", "two-parts", "unknown-to-maas"],
)
def test_a_missing_malformed_or_unknown_key_gets_one_answer(
    gateway: BackgroundServer, key: str | None
) -> None:
    """Whether the gateway or MAAS refused it, and which part was wrong, is not told."""
    response = rest(gateway, "GET", "/boot-resources", key)
    assert response.status_code == 401
    assert error_of(response) == DENIED
    assert response.json()["error"]["details"] == {}
    response = gql(gateway.url, RESOURCES, headers=bearer(key) if key else None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert error_of(response) == DENIED
    assert set(response.json()["errors"][0]["extensions"]) == {"code"}


def test_maas_messages_about_a_key_are_not_passed_on(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    credentials = MaasCredentials.from_key(USER_KEY)
    set_faults(
        simulator.url,
        {
            "status": 401,
            "body": f"Authorization Error: 'Invalid access token: {credentials.token_key}'",
        },
    )
    response = rest(gateway, "GET", "/boot-resources", USER_KEY)
    assert response.status_code == 401
    assert error_of(response) == DENIED
    assert "access token" not in response.text


def test_the_gateways_own_key_never_signs_for_callers(simulator: BackgroundServer) -> None:
    settings = gateway_settings(
        simulator.url, ADMIN_KEY, auth_mode="passthrough", rate_limit_per_second=0
    )
    with running_gateway(settings) as gateway:
        as_user = rest(gateway, "GET", "/boot-sources", USER_KEY)
        reached = upstream_counts(simulator.url)
        anonymous = rest(gateway, "GET", "/boot-sources", None)

        # MAAS refused the user's own key (the gateway's would have been let in) ...
        assert (as_user.status_code, as_user.json()["error"]["code"]) == (403, "FORBIDDEN")
        # ... and nothing was signed for a caller without a key.
        assert (anonymous.status_code, error_of(anonymous)) == (401, DENIED)
        assert upstream_counts(simulator.url) == reached


def test_passthrough_refuses_settings_for_service_mode() -> None:
    for extra in ({"anonymous_scopes": "read"}, {"tokens_file": "/etc/tokens"}):
        with pytest.raises(ValidationError, match="apply to auth_mode=service only"):
            Settings(_env_file=None, auth_mode="passthrough", **extra)


def test_a_passthrough_websocket_signs_in_with_a_maas_key(gateway: BackgroundServer) -> None:
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    query = "subscription { importProgress { importing } }"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(
            json.dumps(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {USER_KEY}"}}
            )
        )
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        message = json.loads(ws.recv(timeout=10))
        assert message["payload"]["data"]["importProgress"]["importing"] is False


@pytest.mark.parametrize("key", ["not-a-maas-key", WRONG_KEY], ids=["malformed", "unknown"])
def test_a_passthrough_websocket_with_a_wrong_key_is_closed_with_4401(
    gateway: BackgroundServer, key: str
) -> None:
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
        )
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


# --- isolation under concurrency --------------------------------------------------------------


async def _as(client: httpx.AsyncClient, key: str, query: str) -> tuple[int, Any]:
    response = await client.post("/graphql", json={"query": query}, headers=bearer(key))
    return response.status_code, response.json()


async def _round(base: str, rounds: int) -> list[tuple[str, int, Any]]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        calls = []
        for i in range(rounds):
            for key in (ADMIN_KEY, USER_KEY) if i % 2 else (USER_KEY, ADMIN_KEY):
                calls.append((key, _as(client, key, SOURCES)))
        results = await asyncio.gather(*(call for _, call in calls))
    return [
        ("admin" if key == ADMIN_KEY else "user", *result)
        for (key, _), result in zip(calls, results, strict=True)
    ]


def _check(results: list[tuple[str, int, Any]]) -> set[str]:
    urls: set[str] = set()
    for who, status, body in results:
        if who == "admin":
            assert status == 200, body
            assert "errors" not in body, body
            urls.update(s["url"] for s in body["data"]["bootSources"])
        else:
            assert body["data"] is None, body
            assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body
    return urls


def test_principals_whose_maas_views_differ_never_see_each_others_answers(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    """Admin and non-admin keys race on the same document, cold and warm, across the
    response cache and the entity cache, and again after writes invalidate them."""
    reset_counts(simulator.url)
    first = _check(asyncio.run(_round(gateway.url, 40)))
    # Every admin answer after the first is shared within the admin's partition only.
    counts = upstream_counts(simulator.url)
    assert counts["GET /MAAS/api/2.0/boot-sources/"] <= 2 + 40, counts
    created = rest_create_source(gateway)
    second = _check(asyncio.run(_round(gateway.url, 40)))
    assert created in second and created not in first
    # REST reads share the entity cache with GraphQL: the same partitions hold there.
    for _ in range(3):
        assert rest(gateway, "GET", "/boot-sources", USER_KEY).status_code == 403
        assert rest(gateway, "GET", "/boot-sources", ADMIN_KEY).status_code == 200
    deleted = rest(gateway, "GET", "/boot-sources", ADMIN_KEY).json()[-1]["id"]
    assert rest(gateway, "DELETE", f"/boot-sources/{deleted}", USER_KEY).status_code == 403
    assert rest(gateway, "DELETE", f"/boot-sources/{deleted}", ADMIN_KEY).status_code == 204
    third = _check(asyncio.run(_round(gateway.url, 40)))
    assert created not in third


def rest_create_source(gateway: BackgroundServer) -> str:
    url = "http://mirror.example.com/images/"
    response = httpx.post(
        f"{gateway.url}/api/v1/boot-sources",
        json={"url": url, "keyring_filename": "/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg"},
        headers=bearer(ADMIN_KEY),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return url


def test_a_non_admin_never_gets_the_admins_stored_response(gateway: BackgroundServer) -> None:
    admin = [gql(gateway.url, SOURCES, headers=bearer(ADMIN_KEY)) for _ in range(2)]
    assert [r.headers["x-cache"] for r in admin] == ["MISS", "HIT"]
    for _ in range(3):
        user = gql(gateway.url, SOURCES, headers=bearer(USER_KEY))
        assert user.headers.get("x-cache") != "HIT"
        assert error_of(user)["code"] == "FORBIDDEN"


IMPORT_STATUS = "GET /MAAS/api/2.0/boot-resources/"


@pytest.mark.parametrize("key", ["a:b:c", WRONG_KEY], ids=["made-up", "unknown-to-maas"])
def test_a_key_maas_has_not_confirmed_gets_a_401_before_its_document_is_parsed(
    gateway: BackgroundServer, key: str
) -> None:
    documents = gateway.app.state.schema.documents  # type: ignore[attr-defined]
    before = documents.parse.cache_info()
    response = gql(gateway.url, fragment_fan_out(18), headers=bearer(key))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert error_of(response) == DENIED
    after = documents.parse.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_a_confirmed_key_is_remembered_for_a_bounded_time(simulator: BackgroundServer) -> None:
    settings = Settings(
        _env_file=None,
        maas_url=f"{simulator.url}/MAAS",
        auth_mode="passthrough",
        rate_limit_per_second=0,
        response_cache_ttl=0,
        cache_ttl_import_status=0.05,
        passthrough_key_ttl=0.5,
    )
    with running_gateway(settings) as gateway:
        reset_counts(simulator.url)
        for _ in range(3):
            assert gql(gateway.url, SOURCES, headers=bearer(ADMIN_KEY)).json()["data"]
        assert upstream_counts(simulator.url)[IMPORT_STATUS] == 1
        # Once the key is forgotten, MAAS is asked again: wait for that, however long it takes.
        deadline = time.monotonic() + 60
        while upstream_counts(simulator.url)[IMPORT_STATUS] == 1 and time.monotonic() < deadline:
            time.sleep(0.05)
            assert gql(gateway.url, SOURCES, headers=bearer(ADMIN_KEY)).json()["data"]
        assert upstream_counts(simulator.url)[IMPORT_STATUS] == 2
