"""The REST API's Swagger UI at /docs: a page that loads only same-origin assets, so it works
with no internet."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from starlette.responses import HTMLResponse

from app.http.pages import page_headers

DOCS_PATH = "/docs"
# Vendored from the npm registry by scripts/vendor_assets.py (not committed), in load order.
VENDOR_SCRIPTS = ("vendor/swagger-ui-bundle.js",)
VENDOR_STYLES = ("vendor/swagger-ui.css",)
FAVICON = "vendor/favicon-32x32.png"

# Nothing inline and nothing from elsewhere: FastAPI's own page starts Swagger UI from an inline
# script, so this one has its own boot.js. data: images are the icons inside swagger-ui.css. The
# page may not be framed, and "Try it out" sends requests to this origin only.
DOCS_HEADERS = page_headers(images="'self' data:")
CONTENT_SECURITY_POLICY = DOCS_HEADERS["Content-Security-Policy"]

_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title}</title>
    <link rel="icon" type="image/png" href="{base}/{favicon}">
{styles}
{scripts}
  </head>
  <body>
    <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
  </body>
</html>
"""


def swagger_ui_page(*, title: str, openapi_url: str, static_prefix: str = "/static") -> str:
    """The /docs page; assets come from `{static_prefix}/swagger-ui/`, and boot.js (last, as
    `defer` keeps document order) reads the document's URL from the container's data."""
    base = escape(static_prefix.rstrip("/") + "/swagger-ui", quote=True)
    scripts = [*VENDOR_SCRIPTS, "boot.js"]
    return _PAGE.format(
        title=escape(f"{title} - Swagger UI"),
        base=base,
        favicon=FAVICON,
        openapi_url=escape(openapi_url, quote=True),
        styles="\n".join(
            f'    <link rel="stylesheet" href="{base}/{name}">' for name in VENDOR_STYLES
        ),
        scripts="\n".join(f'    <script defer src="{base}/{name}"></script>' for name in scripts),
    )


def docs_router(*, title: str, openapi_url: str, static_prefix: str = "/static") -> APIRouter:
    """GET /docs, the page built once here."""
    page = swagger_ui_page(title=title, openapi_url=openapi_url, static_prefix=static_prefix)
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_PATH, name="docs")
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=DOCS_HEADERS)

    return router
