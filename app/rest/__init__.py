"""The REST face, `/api/v1`: boot resources (with streaming uploads), sources and selections,
and desired images."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from app.rest import boot_resources, boot_sources, images
from app.rest.errors import install_error_handlers


def _operation_id(route: APIRoute) -> str:
    # Stable, readable operationIds for generated clients: the endpoint's name.
    return route.name


router = APIRouter(prefix="/api/v1", generate_unique_id_function=_operation_id)
router.include_router(boot_resources.router)
router.include_router(boot_sources.router)
router.include_router(boot_sources.selections)
router.include_router(images.router)

__all__ = ["install_error_handlers", "router"]
