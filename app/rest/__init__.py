"""The REST face, `/api/v1`: boot resources (with streaming uploads), sources and selections,
and desired images."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute

from app.rest import boot_resources, boot_sources, images
from app.rest.errors import install_error_handlers


def _operation_id(route: APIRoute) -> str:
    # Stable, readable operationIds for generated clients: the endpoint's name.
    return route.name


TAGS = [
    {
        "name": "boot-resources",
        "description": "The images MAAS deploys, synced from boot sources or uploaded, with "
        "their sets and files; the import that fetches them and whether they are ready.",
    },
    {
        "name": "boot-sources",
        "description": "Where MAAS imports images from: a simplestreams URL and the keyring "
        "that verifies it.",
    },
    {
        "name": "selections",
        "description": "What a boot source imports: an os and release, with the arches, "
        "subarches and labels wanted.",
    },
    {
        "name": "images",
        "description": "Boot sources and selections declared as one document, planned or applied.",
    },
]
"""The document's tags, in the order the REST reference shows them."""

SERVERS = [{"url": "/", "description": "The gateway that serves this document."}]
"""Relative, so a client resolves it against where it read the document, behind any proxy."""

OPENAPI: dict[str, Any] = {
    "openapi_tags": TAGS,
    "servers": SERVERS,
    "contact": {"name": "maas-gateway maintainers"},
    "license_info": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
}
"""The document's metadata besides its title and version, as FastAPI's arguments."""

router = APIRouter(prefix="/api/v1", generate_unique_id_function=_operation_id)
router.include_router(boot_resources.router)
router.include_router(boot_sources.router)
router.include_router(boot_sources.selections)
router.include_router(images.router)

__all__ = ["OPENAPI", "SERVERS", "TAGS", "install_error_handlers", "router"]
