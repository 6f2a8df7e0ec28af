"""CORS for browser callers of both faces, when origins are configured."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from app.core.settings import Settings

CONTENT_SHA256_HEADER = "X-Content-SHA256"
"""The digest an image upload may declare (app/rest/uploads.py checks it)."""
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "Apollo-Require-Preflight",
    "X-Apollo-Operation-Name",
    "GraphQL-Preflight",
    "X-Request-ID",
    CONTENT_SHA256_HEADER,
]
CORS_EXPOSED = ["Retry-After", "X-Cache", "Location", "X-Request-ID", "Cache-Control"]


def cors(app: ASGIApp, settings: Settings) -> CORSMiddleware | None:
    """CORS around the rest of the pipeline, or None when no origins are configured. It sits
    outside admission, so that even refusals and stored answers carry the CORS headers."""
    if not settings.cors_origin_list:
        return None
    return CORSMiddleware(
        app,
        allow_origins=list(settings.cors_origin_list),
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSED,
        # Credentials are bearer headers, never cookies: nothing ambient to allow.
        allow_credentials=False,
        max_age=600,
    )
