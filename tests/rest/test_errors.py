"""The REST error envelope: one shape and the right status for every error code."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.cli.server import BackgroundServer
from app.core.errors import ALL_ERRORS, UpstreamUnavailable
from app.core.settings import Settings
from app.main import create_app
from app.rest import install_error_handlers
from tests.conftest import USER_KEY
from tests.gateway import WRONG_KEY, set_faults
from tests.rest.conftest import envelope

pytestmark = pytest.mark.anyio


def get(gateway: BackgroundServer, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(f"{gateway.url}/api/v1{path}", timeout=30.0, **kwargs)  # type: ignore[arg-type]


def test_wrong_maas_key_is_unauthenticated(start_gateway) -> None:
    gateway = start_gateway(api_key=WRONG_KEY)
    response = get(gateway, "/boot-resources")
    assert response.status_code == 401
    assert envelope(response)["code"] == "UNAUTHENTICATED"


def test_non_admin_key_is_forbidden_admin_operations(start_gateway) -> None:
    gateway = start_gateway(api_key=USER_KEY)
    assert get(gateway, "/boot-resources").status_code == 200
    for method, path in (("GET", "/boot-sources"), ("POST", "/boot-resources/import")):
        response = httpx.request(method, f"{gateway.url}/api/v1{path}")
        assert response.status_code == 403, (method, path)
        assert envelope(response)["code"] == "FORBIDDEN"


def test_unknown_routes_are_not_found(gateway: BackgroundServer) -> None:
    for path in ("/api/v1/nothing-here", "/api/v2/boot-resources", "/favicon.ico"):
        response = httpx.get(f"{gateway.url}{path}")
        assert response.status_code == 404, path
        assert envelope(response)["code"] == "NOT_FOUND"


def test_wrong_method_is_405_with_allow(gateway: BackgroundServer) -> None:
    response = httpx.patch(f"{gateway.url}/api/v1/boot-resources")
    assert response.status_code == 405
    assert envelope(response)["code"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after"),
    [
        ({"status": 409}, 409, "CONFLICT", "5"),
        ({"status": 429}, 429, "RATE_LIMITED", None),
        ({"status": 500}, 502, "UPSTREAM_BAD_RESPONSE", None),
        ({"malformed": True}, 502, "UPSTREAM_BAD_RESPONSE", None),
        ({"drop": True}, 502, "UPSTREAM_BAD_RESPONSE", None),
        ({"status": 503}, 503, "UPSTREAM_UNAVAILABLE", "10"),
        ({"status": 504}, 504, "UPSTREAM_TIMEOUT", None),
    ],
)
def test_maas_failures_map_to_their_code(
    start_gateway,
    simulator: BackgroundServer,
    fault: dict[str, object],
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    gateway = start_gateway(maas_retries=0)
    set_faults(simulator.url, {"path": r"/boot-sources/$", **fault})
    response = get(gateway, "/boot-sources")
    assert response.status_code == status, response.text
    error = envelope(response)
    assert error["code"] == code
    assert response.headers.get("retry-after") == retry_after
    assert simulator.url not in response.text, "no upstream URLs leak"


def test_a_hanging_maas_is_a_timeout(start_gateway, simulator: BackgroundServer) -> None:
    gateway = start_gateway(maas_timeout=0.3, maas_retries=0)
    set_faults(simulator.url, {"path": r"/boot-sources/$", "hang": True})
    response = get(gateway, "/boot-sources")
    assert response.status_code == 504
    assert envelope(response)["code"] == "UPSTREAM_TIMEOUT"


def test_maas_validation_is_400_with_field_messages(gateway: BackgroundServer) -> None:
    response = httpx.post(
        f"{gateway.url}/api/v1/boot-sources", json={"url": "http://only-url.example.com/"}
    )
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert error["details"]["fields"]["__all__"]


def test_request_validation_is_400_with_field_details(gateway: BackgroundServer) -> None:
    response = get(gateway, "/boot-resources", params={"expand": "everything", "type": "x"})
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert set(error["details"]["fields"]) == {"expand", "type"}


async def test_every_gateway_error_and_a_crash_render_as_the_envelope() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{index}")
    async def raise_error(index: int) -> None:
        error = ALL_ERRORS[index]
        raise error(f"{error.code} happened")

    @app.get("/retry")
    async def retry() -> None:
        raise UpstreamUnavailable("down", retry_after=2.5)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for index, error_type in enumerate(ALL_ERRORS):
            response = await client.get(f"/raise/{index}")
            assert response.status_code == error_type.status
            error = envelope(response)
            assert error["code"] == error_type.code
            assert error["message"] == f"{error_type.code} happened"
        retrying = await client.get("/retry")
        assert retrying.headers["retry-after"] == "3"
        crashed = await client.get("/crash")
        assert crashed.status_code == 500
        assert envelope(crashed) == {
            "code": "INTERNAL",
            "message": "internal error",
            "details": {},
        }


def test_openapi_documents_the_envelope_and_a_model_for_every_route() -> None:
    app = create_app(Settings.model_construct())
    spec = app.openapi()
    rest = {p: ops for p, ops in spec["paths"].items() if p.startswith("/api/v1")}
    assert len(rest) == 11
    envelope_ref = "#/components/schemas/ErrorEnvelope"
    for path, operations in rest.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            for status in ("400", "401", "403", "502", "503", "504", "default"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": envelope_ref}, (method, path, status)
            success = next(s for s in responses if s.startswith("2"))
            if success != "204":
                assert responses[success]["content"]["application/json"]["schema"], (path, method)
    upload = rest["/api/v1/boot-resources"]["post"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
