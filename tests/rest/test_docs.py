"""/docs works air-gapped: Swagger UI from the gateway's own assets, driven by a real Chromium
with every request off loopback blocked, under the page's own Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Route, expect

from app.cli.server import BackgroundServer
from app.rest.docs import (
    CONTENT_SECURITY_POLICY,
    FAVICON,
    VENDOR_SCRIPTS,
    VENDOR_STYLES,
    swagger_ui_page,
)
from tests.browser import OfflinePage, page_assets
from tests.gateway import write_tokens
from tests.rest.conftest import GatewayFactory

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# The simulator's default boot source is MAAS's own image stream.
MAAS_IMAGES_URL = "images.maas.io"
# Each operation Swagger UI rendered, as (method, path) read from its summary row.
RENDERED_OPERATIONS = """
() => [...document.querySelectorAll("#swagger-ui .opblock")].map((block) => [
  block.querySelector(".opblock-summary-method").textContent.toLowerCase(),
  block.querySelector(".opblock-summary-path").dataset.path,
])
"""


@pytest.fixture
def docs_gateway(gateway: BackgroundServer, vendored_assets: None) -> BackgroundServer:
    return gateway


def documented_operations(gateway: BackgroundServer) -> list[tuple[str, str]]:
    document = httpx.get(f"{gateway.url}/openapi.json").raise_for_status().json()
    return sorted(
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    )


def open_docs(offline: OfflinePage, gateway: BackgroundServer) -> None:
    # goto returns after "load", when every deferred script has run or failed: check first,
    # so a missing asset is reported as such rather than as operations that never appeared.
    offline.page.goto(f"{gateway.url}/docs")
    offline.assert_self_contained()


def test_docs_lists_every_operation_with_the_internet_blocked(
    docs_gateway: BackgroundServer, offline_page: OfflinePage
) -> None:
    operations = documented_operations(docs_gateway)
    open_docs(offline_page, docs_gateway)

    expect(offline_page.page.locator("#swagger-ui .opblock")).to_have_count(len(operations))

    rendered = offline_page.page.evaluate(RENDERED_OPERATIONS)
    assert sorted(map(tuple, rendered)) == operations
    expect(offline_page.page.locator("#swagger-ui .info .title")).to_contain_text("maas-gateway")
    offline_page.assert_self_contained()


def test_docs_runs_an_operation_against_the_gateway_with_the_internet_blocked(
    docs_gateway: BackgroundServer, offline_page: OfflinePage
) -> None:
    open_docs(offline_page, docs_gateway)
    page = offline_page.page
    operation = page.locator(
        '.opblock-get:has(.opblock-summary-path[data-path="/api/v1/boot-sources"])'
    )

    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()

    response = operation.locator(".live-responses-table .response")
    expect(response.locator(".response-col_status")).to_have_text("200")
    expect(response.locator(".response-col_description")).to_contain_text(MAAS_IMAGES_URL)
    offline_page.assert_self_contained()


def test_docs_says_how_to_vendor_when_the_assets_are_missing(
    docs_gateway: BackgroundServer, offline_page: OfflinePage
) -> None:
    def missing(route: Route) -> None:
        route.fulfill(status=404)

    offline_page.page.route("**/static/swagger-ui/vendor/**", missing)
    offline_page.page.goto(f"{docs_gateway.url}/docs")

    message = offline_page.page.locator(".swagger-ui-boot-error")
    expect(message).to_contain_text("vendor_assets.py")
    assert offline_page.blocked == []


def test_docs_page_and_assets_are_served_under_a_self_only_policy(
    docs_gateway: BackgroundServer,
) -> None:
    page = httpx.get(f"{docs_gateway.url}/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    for directive in CONTENT_SECURITY_POLICY.split("; "):
        name, *sources = directive.split()
        # Nothing from another origin, nothing inline, no eval: data: only for images.
        allowed = {"'self'", "'none'"} | ({"data:"} if name == "img-src" else set())
        assert set(sources) <= allowed, directive

    content_types = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for url in page_assets(page.text).urls:
        asset = httpx.get(f"{docs_gateway.url}{url}")
        assert asset.status_code == 200, url
        assert content_types[Path(url).suffix] in asset.headers["content-type"], url


def test_docs_needs_no_credential_when_tokens_are_required(
    start_gateway: GatewayFactory, vendored_assets: None, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    write_tokens(tokens, ui="read")
    gateway = start_gateway(tokens_file=str(tokens))

    assert httpx.get(f"{gateway.url}/api/v1/boot-sources").status_code == 401
    page = httpx.get(f"{gateway.url}/docs")
    assert page.status_code == 200
    for url in [*page_assets(page.text).urls, "/openapi.json"]:
        assert httpx.get(f"{gateway.url}{url}").status_code == 200, url


def test_redoc_is_off_and_docs_is_not_an_operation(docs_gateway: BackgroundServer) -> None:
    # ReDoc's page would load from a CDN, and needs inline styles a self-only policy refuses.
    assert httpx.get(f"{docs_gateway.url}/redoc").status_code == 404
    document = httpx.get(f"{docs_gateway.url}/openapi.json").json()
    assert not {"/docs", "/redoc", "/openapi.json"} & set(document["paths"])


def test_docs_page_loads_only_files_under_the_static_prefix() -> None:
    assets = page_assets(swagger_ui_page(title="maas-gateway", openapi_url="/openapi.json"))

    names = (*VENDOR_SCRIPTS, *VENDOR_STYLES, FAVICON, "boot.js")
    assert set(assets.urls) == {f"/static/swagger-ui/{name}" for name in names}
    assert assets.inline == []


def test_docs_page_escapes_the_document_url_and_prefix_when_they_hold_markup() -> None:
    markup = '"><script>alert(1)</script>'
    html = swagger_ui_page(
        title=f"t{markup}", openapi_url=f"/openapi.json{markup}", static_prefix=f"/s{markup}"
    )

    assets = page_assets(html)
    assert assets.inline == []
    # The markup stayed inside the attributes: the parser reads it back as their text.
    assert all(url.startswith(f"/s{markup}/swagger-ui/") for url in assets.urls)
    assert "<script>alert" not in html
