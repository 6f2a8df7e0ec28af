"""The headers of the gateway's browser pages (GraphiQL, the REST docs): their own assets only,
nothing inline, never framed, requests to this origin only."""

from __future__ import annotations


def page_headers(*, images: str = "'self'", fonts: str = "'self'") -> dict[str, str]:
    """A page's security headers; `images` and `fonts` name the sources its stylesheets need
    beyond the origin (data: icons and fonts inlined by the vendored CSS)."""
    policy = (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
        f"font-src {fonts}; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
