"""GraphiQL works air-gapped: a real Chromium drives a running gateway with the internet cut off."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
from playwright.sync_api import Route, expect

from app.cli.server import BackgroundServer
from app.graphql.graphiql import VENDOR_SCRIPTS, VENDOR_STYLES, graphiql_page
from app.main import create_app
from tests.browser import OfflinePage, load_vendor_module, page_assets
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings, running_gateway

# Nothing inline and nothing from elsewhere; fonts are data: URIs inside graphiql.min.css.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The simulator's default boot source is MAAS's own image stream.
MAAS_IMAGES_URL = "images.maas.io"

vendor_assets = load_vendor_module()


# -- the page itself --------------------------------------------------------------------------


def test_graphiql_page_loads_only_files_under_the_static_prefix() -> None:
    assets = page_assets(graphiql_page("/static"))

    expected = {f"/static/graphiql/{name}" for name in (*VENDOR_SCRIPTS, *VENDOR_STYLES)}
    assert expected <= set(assets.urls)
    assert {"/static/graphiql/boot.js", "/static/graphiql/boot.css"} <= set(assets.urls)
    assert all(url.startswith("/static/graphiql/") for url in assets.urls), assets.urls
    assert assets.inline == []


def test_graphiql_page_escapes_the_static_prefix_when_it_holds_markup() -> None:
    html = graphiql_page('/gw/static/"><script>alert(1)</script>')

    assets = page_assets(html)
    assert assets.inline == []
    assert all(url.startswith("/gw/static/") for url in assets.urls)


def test_graphiql_page_uses_the_static_prefix_when_it_ends_with_a_slash() -> None:
    assets = page_assets(graphiql_page("/gw/static/"))

    assert "/gw/static/graphiql/boot.js" in assets.urls


def test_graphiql_vendors_the_versions_strawberrys_own_page_loads() -> None:
    # Strawberry tests its GraphiQL integration against these; drifting apart is a choice to make.
    html = (Path(strawberry.__file__).parent / "static" / "graphiql.html").read_text()
    loaded = set(re.findall(r"unpkg\.com/((?:@[\w.-]+/)?[\w.-]+)@([\w.-]+)/", html))
    vendored = {(package.name, package.version) for package in vendor_assets.GRAPHIQL.packages}

    assert vendored <= loaded, f"strawberry's page loads {sorted(loaded)}"


# -- the browser ------------------------------------------------------------------------------


def with_header(app: Any, name: bytes, value: bytes) -> Any:
    """Wrap an ASGI app so every HTTP response carries one more header."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (name, value)]}
            await send(message)

        await app(scope, receive, send_with_header)

    return wrapped


@pytest.fixture
def graphiql_gateway(
    simulator: BackgroundServer, vendored_assets: None
) -> Iterator[BackgroundServer]:
    """The real gateway against the simulator, as `maas-gateway serve` runs it."""
    with running_gateway(gateway_settings(simulator.url, ADMIN_KEY)) as server:
        yield server


@pytest.fixture
def csp_gateway(simulator: BackgroundServer, vendored_assets: None) -> Iterator[BackgroundServer]:
    """The real gateway with every response under STRICT_CSP."""
    app = create_app(gateway_settings(simulator.url, ADMIN_KEY))
    with BackgroundServer(
        with_header(app, b"content-security-policy", STRICT_CSP.encode())
    ) as server:
        yield server


def open_graphiql(
    offline: OfflinePage, gateway: BackgroundServer, query: str | None = None
) -> None:
    url = f"{gateway.url}/graphql"
    if query is not None:
        url += "?" + urllib.parse.urlencode({"q": query})
    # goto returns after "load", when every deferred script has run or failed: check first,
    # so a missing asset is reported as such rather than as an editor that never appeared.
    offline.page.goto(url)
    offline.assert_self_contained()
    expect(offline.page.locator(".graphiql-query-editor .CodeMirror")).to_be_visible()


def run_and_read_result(offline: OfflinePage, expected: str) -> str:
    offline.page.locator(".graphiql-execute-button").click()
    result = offline.page.locator(".graphiql-response")
    expect(result).to_contain_text(expected)
    return result.inner_text()


def test_graphiql_runs_a_typed_query_with_the_internet_blocked(
    graphiql_gateway: BackgroundServer, offline_page: OfflinePage
) -> None:
    open_graphiql(offline_page, graphiql_gateway)
    page = offline_page.page

    # The alias makes the result differ from the default query's, so typing really happened.
    page.locator(".graphiql-query-editor .CodeMirror").click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.insert_text("{ typed: bootSources { id url } }")
    result = run_and_read_result(offline_page, MAAS_IMAGES_URL)

    assert '"typed"' in result
    # The editor's text is kept in the link (after GraphiQL's debounce), so it can be shared.
    page.wait_for_function(
        "(query) => new URLSearchParams(location.search).get('q') === query",
        arg="{ typed: bootSources { id url } }",
    )
    offline_page.assert_self_contained()


def test_graphiql_runs_the_query_from_the_link_when_opened_with_q(
    graphiql_gateway: BackgroundServer, offline_page: OfflinePage
) -> None:
    open_graphiql(offline_page, graphiql_gateway, "{ linked: bootSources { url } }")

    result = run_and_read_result(offline_page, MAAS_IMAGES_URL)

    assert '"linked"' in result
    offline_page.assert_self_contained()


def test_graphiql_streams_a_subscription_over_the_websocket(
    graphiql_gateway: BackgroundServer, offline_page: OfflinePage
) -> None:
    open_graphiql(offline_page, graphiql_gateway, "subscription { importProgress { importing } }")

    run_and_read_result(offline_page, '"importing"')

    offline_page.assert_self_contained()


def test_graphiql_explorer_lists_the_schema_with_the_internet_blocked(
    graphiql_gateway: BackgroundServer, offline_page: OfflinePage
) -> None:
    open_graphiql(offline_page, graphiql_gateway)

    offline_page.page.get_by_role("button", name="Show GraphiQL Explorer").click()

    expect(offline_page.page.locator(".graphiql-explorer-root")).to_contain_text("bootSources")
    offline_page.assert_self_contained()


def test_graphiql_works_when_a_strict_csp_is_enforced(
    csp_gateway: BackgroundServer, offline_page: OfflinePage
) -> None:
    open_graphiql(offline_page, csp_gateway, "subscription { importProgress { importing } }")

    offline_page.page.get_by_role("button", name="Show GraphiQL Explorer").click()
    expect(offline_page.page.locator(".graphiql-explorer-root")).to_contain_text("importProgress")
    run_and_read_result(offline_page, '"importing"')

    offline_page.assert_self_contained()


def test_graphiql_says_how_to_vendor_when_the_assets_are_missing(
    graphiql_gateway: BackgroundServer, offline_page: OfflinePage
) -> None:
    def missing(route: Route) -> None:
        route.fulfill(status=404)

    offline_page.page.route("**/static/graphiql/vendor/**", missing)
    offline_page.page.goto(f"{graphiql_gateway.url}/graphql")

    expect(offline_page.page.locator(".graphiql-boot-error")).to_contain_text("vendor_assets.py")
    assert offline_page.blocked == []


def test_graphiql_page_and_assets_are_served_by_the_gateway(
    graphiql_gateway: BackgroundServer,
) -> None:
    page = httpx.get(f"{graphiql_gateway.url}/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert page.text == graphiql_page()

    content_types = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for url in page_assets(page.text).urls:
        asset = httpx.get(f"{graphiql_gateway.url}{url}")
        assert asset.status_code == 200, url
        assert content_types[Path(url).suffix] in asset.headers["content-type"], url
