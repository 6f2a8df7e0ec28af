"""Test helpers for the browser pages: a real headless Chromium, and pages cut off from
everything but loopback that keep whatever went wrong (tests/conftest.py makes them fixtures)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    Route,
    WebSocketRoute,
    sync_playwright,
)

ROOT = Path(__file__).resolve().parents[1]
VENDOR_SCRIPT = ROOT / "scripts" / "vendor_assets.py"
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
TIMEOUT_MS = 15_000

# Records Content-Security-Policy refusals with what was refused, for the assertion message.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def fetch_vendored_assets() -> None:
    """The pages' vendored assets, fetched from the npm registry on a fresh clone (a no-op
    after)."""
    result = subprocess.run(
        [sys.executable, str(VENDOR_SCRIPT)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"vendoring the pages' assets failed:\n{result.stdout}{result.stderr}")


def load_vendor_module() -> ModuleType:
    """scripts/vendor_assets.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("vendor_assets", VENDOR_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolves annotations through sys.modules, so the module must be registered.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def is_loopback(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS


@dataclass
class OfflinePage:
    """A page whose requests off loopback are refused, with everything that went wrong kept."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def assert_self_contained(self) -> None:
        # Messages of their own: pytest rewrites asserts in test modules and conftest only.
        assert self.blocked == [], f"the page needed something from beyond loopback: {self.blocked}"
        assert self.problems == [], self.problems
        violations = self.page.evaluate("window.__cspViolations")
        assert violations == [], f"Content-Security-Policy refused: {violations}"


@contextmanager
def offline_page_in(browser: Browser) -> Iterator[OfflinePage]:
    """A fresh context's page: off-loopback requests and WebSockets are blocked and noted;
    console errors, page errors, failed requests and HTTP errors are noted as problems."""
    context = browser.new_context(service_workers="block")
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
