"""The GraphiQL page: HTML that loads only same-origin assets, so it works with no internet."""

from __future__ import annotations

from html import escape

from app.http.pages import page_headers

# Vendored from the npm registry by scripts/vendor_assets.py (not committed), in load order.
VENDOR_SCRIPTS = (
    "vendor/react.production.min.js",
    "vendor/react-dom.production.min.js",
    "vendor/graphiql.min.js",
    "vendor/plugin-explorer.umd.js",
)
VENDOR_STYLES = ("vendor/graphiql.min.css", "vendor/plugin-explorer.css")

# Nothing inline and nothing from elsewhere (fonts are data: URIs in graphiql.min.css); the
# page may not be framed, and its queries go to this origin only.
GRAPHIQL_HEADERS = page_headers(fonts="'self' data:")
CONTENT_SECURITY_POLICY = GRAPHIQL_HEADERS["Content-Security-Policy"]

_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>maas-gateway GraphiQL</title>
    <link rel="icon" type="image/svg+xml" href="{base}/favicon.svg">
{styles}
{scripts}
  </head>
  <body>
    <div id="graphiql" class="graphiql-container">Loading&hellip;</div>
  </body>
</html>
"""


def graphiql_page(static_prefix: str = "/static") -> str:
    """The page for GET /graphql from a browser; assets come from `{static_prefix}/graphiql/`.

    There is no inline script or style: boot.js and boot.css are files, so the page keeps
    working under a Content-Security-Policy of `script-src 'self'`. `defer` runs the scripts
    in document order once the page is parsed, boot.js last.
    """
    base = escape(static_prefix.rstrip("/") + "/graphiql", quote=True)
    styles = [*VENDOR_STYLES, "boot.css"]
    scripts = [*VENDOR_SCRIPTS, "boot.js"]
    return _PAGE.format(
        base=base,
        styles="\n".join(f'    <link rel="stylesheet" href="{base}/{name}">' for name in styles),
        scripts="\n".join(f'    <script defer src="{base}/{name}"></script>' for name in scripts),
    )
