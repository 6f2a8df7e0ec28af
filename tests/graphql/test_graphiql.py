"""GraphiQL works air-gapped: a real Chromium drives a running gateway with the internet cut off."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import strawberry
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    Route,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from app.cli.server import BackgroundServer
from app.graphql.graphiql import VENDOR_SCRIPTS, VENDOR_STYLES, graphiql_page
from app.main import create_app
from tests.conftest import ADMIN_KEY
from tests.gateway import gateway_settings, running_gateway

ROOT = Path(__file__).resolve().parents[2]
VENDOR_SCRIPT = ROOT / "scripts" / "vendor_graphiql.py"
VENDOR_DIR = ROOT / "app" / "static" / "graphiql" / "vendor"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Belt and braces beside the request routing: no name but loopback resolves at all.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Nothing inline and nothing from elsewhere; fonts are data: URIs inside graphiql.min.css.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The simulator's default boot source is MAAS's own image stream.
MAAS_IMAGES_URL = "images.maas.io"
TIMEOUT_MS = 15_000


def load_vendor_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_graphiql", VENDOR_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolves annotations through sys.modules, so the module must be registered.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


vendor_graphiql = load_vendor_module()


# -- the page itself --------------------------------------------------------------------------


class PageAssets(HTMLParser):
    """Collects what a page loads and anything inline a strict CSP would refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "style" or "style" in attributes:
            self.inline.append(f"<{tag}> style")
        if any(name.startswith("on") for name in attributes):
            self.inline.append(f"<{tag}> event handler")
        for name in ("src", "href"):
            if attributes.get(name):
                self.urls.append(str(attributes[name]))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("<script> body")


def page_assets(html: str) -> PageAssets:
    parser = PageAssets()
    parser.feed(html)
    return parser


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
    vendored = {(package.name, package.version) for package in vendor_graphiql.PACKAGES}

    assert vendored <= loaded, f"strawberry's page loads {sorted(loaded)}"


# -- the vendoring script ---------------------------------------------------------------------


def make_tarball(directory: Path, members: dict[str, bytes]) -> Path:
    path = directory / "pkg-1.0.0.tgz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def sri(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


@dataclass
class FakeRegistry:
    """Stands in for `npm pack`: serves one local tarball and counts downloads."""

    tarball: Path
    downloads: int = 0

    def pack(self, packages: tuple[Any, ...], workdir: Path) -> dict[str, Path]:
        self.downloads += 1
        return {package.name: self.tarball for package in packages}


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, FakeRegistry]:
    tarball = make_tarball(tmp_path, {"package/dist/app.js": b"window.App = 1;\n"})
    package = vendor_graphiql.Package(
        "pkg", "1.0.0", sri(tarball), {"package/dist/app.js": "app.js"}
    )
    registry = FakeRegistry(tarball)
    monkeypatch.setattr(vendor_graphiql, "npm_pack", registry.pack)
    monkeypatch.setattr(vendor_graphiql, "PACKAGES", (package,))
    return package, registry


def test_vendoring_writes_the_files_and_a_manifest_that_verifies(
    tmp_path: Path, fake_package: tuple[Any, FakeRegistry]
) -> None:
    dest = tmp_path / "vendor"

    assert vendor_graphiql.main(["--dest", str(dest)]) == 0

    assert (dest / "app.js").read_bytes() == b"window.App = 1;\n"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["packages"] == {
        "pkg": {"version": "1.0.0", "integrity": fake_package[0].integrity}
    }
    assert vendor_graphiql.main(["--dest", str(dest), "--check"]) == 0


def test_vendoring_is_a_no_op_when_up_to_date(
    tmp_path: Path, fake_package: tuple[Any, FakeRegistry]
) -> None:
    dest = tmp_path / "vendor"
    vendor_graphiql.main(["--dest", str(dest)])

    assert vendor_graphiql.main(["--dest", str(dest)]) == 0

    assert fake_package[1].downloads == 1


def test_vendoring_fetches_again_when_a_vendored_file_was_altered(
    tmp_path: Path, fake_package: tuple[Any, FakeRegistry]
) -> None:
    dest = tmp_path / "vendor"
    vendor_graphiql.main(["--dest", str(dest)])
    (dest / "app.js").write_text("tampered")

    assert vendor_graphiql.main(["--dest", str(dest), "--check"]) == 1
    assert vendor_graphiql.main(["--dest", str(dest)]) == 0

    assert (dest / "app.js").read_bytes() == b"window.App = 1;\n"
    assert fake_package[1].downloads == 2


def test_vendoring_refuses_a_tarball_when_it_differs_from_the_pinned_integrity(
    tmp_path: Path, fake_package: tuple[Any, FakeRegistry], capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "vendor"
    fake_package[1].tarball = make_tarball(tmp_path / "..", {"package/dist/app.js": b"evil()"})

    assert vendor_graphiql.main(["--dest", str(dest)]) == 1

    assert "does not match the pinned" in capsys.readouterr().err
    assert not (dest / "app.js").exists()
    assert not (dest / "manifest.json").exists()


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def graphiql_assets() -> Path:
    """The vendored assets, fetched from the npm registry on a fresh clone (a no-op after)."""
    result = subprocess.run(
        [sys.executable, str(VENDOR_SCRIPT)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"vendoring GraphiQL failed:\n{result.stdout}{result.stderr}")
    return VENDOR_DIR


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    # Module scope: the sync API's event loop must be gone before other modules' async tests.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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
    simulator: BackgroundServer, graphiql_assets: Path
) -> Iterator[BackgroundServer]:
    """The real gateway against the simulator, as `maas-gateway serve` runs it."""
    with running_gateway(gateway_settings(simulator.url, ADMIN_KEY)) as server:
        yield server


@pytest.fixture
def csp_gateway(simulator: BackgroundServer, graphiql_assets: Path) -> Iterator[BackgroundServer]:
    """The real gateway with every response under STRICT_CSP."""
    app = create_app(gateway_settings(simulator.url, ADMIN_KEY))
    with BackgroundServer(
        with_header(app, b"content-security-policy", STRICT_CSP.encode())
    ) as server:
        yield server


def is_loopback(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS


@dataclass
class OfflinePage:
    """A page whose requests off loopback are refused, with everything that went wrong kept."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def assert_self_contained(self) -> None:
        assert self.blocked == [], "the page needed something from beyond loopback"
        assert self.problems == []
        assert self.page.evaluate("window.__cspViolations") == []


# Records Content-Security-Policy refusals with what was refused, for the assertion message.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture
def offline_page(chromium: Browser) -> Iterator[OfflinePage]:
    context = chromium.new_context(service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)
    offline = OfflinePage(context.new_page())

    def route(route: Route) -> None:
        if is_loopback(route.request.url):
            route.continue_()
        else:
            offline.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def route_websocket(websocket: WebSocketRoute) -> None:
        offline.blocked.append(websocket.url)
        websocket.close()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            offline.problems.append(f"console: {message.text}")

    def response(response: Response) -> None:
        if response.status >= 400:
            offline.problems.append(f"HTTP {response.status}: {response.url}")

    context.route("**/*", route)
    context.route_web_socket(lambda url: not is_loopback(url), route_websocket)
    context.add_init_script(CSP_RECORDER)
    page = offline.page
    page.on("console", console)
    page.on("pageerror", lambda error: offline.problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda r: offline.problems.append(f"failed: {r.url} {r.failure}"))
    page.on("response", response)
    try:
        yield offline
    finally:
        context.close()


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

    expect(offline_page.page.locator(".graphiql-boot-error")).to_contain_text("vendor_graphiql.py")
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
