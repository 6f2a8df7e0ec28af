"""REST routes for boot resources: list, read, upload, delete, and the import start/stop/status."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from starlette.requests import Request
from starlette.responses import Response

from app.core.models import BootResourceFilter, BootResourceType, ImageSelector, Readiness
from app.rest.deps import CallerDep, ResourceId, ServiceDep, SettingsDep
from app.rest.errors import COMMON_ERRORS, error_responses
from app.rest.links import RESOURCE_LINKS, answered, created
from app.rest.responses import json_read, json_write
from app.rest.schemas import (
    BootResourceOut,
    ImportActionOut,
    ImportStatusOut,
    ReadinessOut,
    dump_import_status,
    dump_resource,
)
from app.rest.uploads import (
    ARCHITECTURE_PATTERN,
    BASE_IMAGE_PATTERN,
    NAME_PATTERN,
    SHA256_PATTERN,
    Filetype,
    UploadMeta,
    receive_upload,
)
from app.service import RESOURCE_FAMILIES, Family, track_reads

router = APIRouter(prefix="/boot-resources", tags=["boot-resources"])

PREFIX = "/api/v1/boot-resources"


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


TypeParam = Annotated[
    Literal["all", "synced", "uploaded"] | None,
    BeforeValidator(_lower),
    Query(
        alias="type",
        description="Resource type, case-insensitive (MAAS's filter tokens, maas-api.md §5.1). "
        "Not `generated`, which MAAS 3.5 and later refuse; `all` lists those of a MAAS 3.4.",
    ),
]

# The import routes come before /{resource_id}, so "import" is never taken for an id.


@router.get(
    "/import",
    response_model=ImportStatusOut,
    responses=error_responses(*COMMON_ERRORS, 413),
    summary="Import status: running or not, and the resources still incomplete",
    description="Reads every resource's sets (one cached MAAS read each, bounded by the "
    "fan-out limit: 413 beyond it) to list those whose newest set is not complete.",
)
async def import_status(service: ServiceDep, caller: CallerDep, request: Request) -> Response:
    with track_reads() as reads:
        status = await service.import_status(caller)
    families = (*RESOURCE_FAMILIES, Family.IMPORT_STATUS)
    return json_read(request, dump_import_status(status), families, reads)


MAX_WAIT = 60.0


@router.get(
    "/ready",
    response_model=ReadinessOut,
    responses=error_responses(*COMMON_ERRORS),
    summary="Whether the images asked for are complete, waiting up to `wait` seconds",
    description="A long poll: answers as soon as every matching synced image's newest set is "
    "complete, else after `wait` seconds (at most 60) with `ready: false`; ask again to keep "
    "waiting. `wait=0` answers at once. No image matching is not ready: start the import "
    "first. GraphQL's bootResourcesReady subscription does the same as a stream.",
)
async def ready(
    service: ServiceDep,
    caller: CallerDep,
    os: Annotated[str | None, Query(max_length=20)] = None,
    release: Annotated[str | None, Query(max_length=20)] = None,
    arch: Annotated[list[str] | None, Query(description="Repeat for several.")] = None,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0.0,
) -> Response:
    selector = ImageSelector(os, release, frozenset(arch) if arch else None)
    last: Readiness | None = None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait or None):
            async for readiness in service.progress.until_ready(caller, selector, stall=None):
                last = readiness
                if not wait:
                    break
    if last is None:  # the wait ran out before the first snapshot came
        last = selector.readiness(await service.progress.snapshot(caller))
    response = json_write(dataclasses.asdict(last))
    response.headers["Cache-Control"] = "no-store"  # never a stored answer: it is of now
    return response


@router.post(
    "/import",
    status_code=202,
    response_model=ImportActionOut,
    responses=error_responses(*COMMON_ERRORS),
    summary="Start importing boot resources from the boot sources",
    description="Asks MAAS to import what the boot sources' selections name; 202 at once, as "
    "MAAS imports in the background. Follow it with `GET /ready` or `GET /import`.",
)
async def start_import(service: ServiceDep, caller: CallerDep) -> Response:
    await service.start_import(caller)
    return json_write({"importing": True}, 202)


@router.delete(
    "/import",
    status_code=202,
    response_model=ImportActionOut,
    responses=error_responses(*COMMON_ERRORS),
    summary="Stop the running import",
    description="Asks MAAS to stop importing; 202 whether or not an import was running.",
)
async def stop_import(service: ServiceDep, caller: CallerDep) -> Response:
    await service.stop_import(caller)
    return json_write({"importing": False}, 202)


@router.post(
    "/import/stop",
    status_code=202,
    response_model=ImportActionOut,
    responses=error_responses(*COMMON_ERRORS),
    summary="Stop the running import (for clients that cannot send DELETE)",
    description="The same as `DELETE /import`.",
)
async def stop_import_post(service: ServiceDep, caller: CallerDep) -> Response:
    return await stop_import(service, caller)


@router.get(
    "",
    response_model=list[BootResourceOut],
    responses=error_responses(*COMMON_ERRORS, 413),
    summary="List boot resources",
    description="Filters combine with AND. `expand=sets` adds each resource's sets and files, "
    "at one (cached) MAAS read per resource, bounded by the gateway's fan-out limit (413).",
)
async def list_boot_resources(
    service: ServiceDep,
    caller: CallerDep,
    request: Request,
    resource_type: TypeParam = None,
    os: Annotated[str | None, Query(examples=["ubuntu"])] = None,
    release: Annotated[str | None, Query(examples=["noble"])] = None,
    architecture: Annotated[
        str | None, Query(description="arch (any subarch) or arch/subarch.")
    ] = None,
    name: Annotated[str | None, Query(examples=["ubuntu/noble"])] = None,
    expand: Annotated[Literal["sets"] | None, Query(description="Include sets and files.")] = None,
) -> Response:
    wanted = BootResourceFilter(
        type=None
        if resource_type in (None, "all")
        else BootResourceType(str(resource_type).upper()),
        os=os,
        release=release,
        architecture=architecture,
        name=name,
    )
    with track_reads() as reads:
        if expand == "sets":
            resources = await service.list_boot_resources_detailed(caller, wanted)
        else:
            resources = await service.list_boot_resources(caller, wanted)
    families = RESOURCE_FAMILIES if expand == "sets" else (Family.BOOT_RESOURCES,)
    return json_read(request, [dump_resource(r) for r in resources], families, reads)


@router.post(
    "",
    status_code=201,
    response_model=BootResourceOut,
    responses={**error_responses(*COMMON_ERRORS, 413), **created(RESOURCE_LINKS)},
    summary="Upload a custom image (the raw request body)",
    description="The body is the image itself (`application/octet-stream`). When its size "
    "(`size` or Content-Length) and `sha256` (or `X-Content-SHA256`) are declared, it streams "
    "to MAAS chunk by chunk as it arrives; otherwise the gateway first spools it to a "
    "temporary file to learn them. A body that does not match what was declared is rejected "
    "(400) and the half-made resource is deleted from MAAS.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_boot_resource(
    service: ServiceDep,
    caller: CallerDep,
    settings: SettingsDep,
    request: Request,
    name: Annotated[
        str, Query(max_length=255, pattern=NAME_PATTERN, examples=["custom/alma9", "alma9"])
    ],
    architecture: Annotated[
        str, Query(max_length=255, pattern=ARCHITECTURE_PATTERN, examples=["amd64/generic"])
    ],
    title: Annotated[str | None, Query(max_length=255)] = None,
    filetype: Annotated[Filetype, Query(description="MAAS's upload file type.")] = "tgz",
    base_image: Annotated[
        str | None,
        Query(max_length=255, pattern=BASE_IMAGE_PATTERN, examples=["ubuntu/noble"]),
    ] = None,
    size: Annotated[int | None, Query(gt=0, description="The image's size in bytes.")] = None,
    sha256: Annotated[
        str | None, Query(pattern=SHA256_PATTERN, description="The image's SHA-256, hex.")
    ] = None,
) -> Response:
    meta = UploadMeta(
        name=name,
        architecture=architecture,
        filetype=filetype,
        title=title,
        base_image=base_image,
        size=size,
        sha256=sha256,
    )
    resource = await receive_upload(request, service, caller, meta, settings)
    return json_write(dump_resource(resource), 201, location=f"{PREFIX}/{resource.id}")


@router.get(
    "/{resource_id}",
    response_model=BootResourceOut,
    responses={**error_responses(*COMMON_ERRORS, 404), **answered(200, RESOURCE_LINKS)},
    summary="One boot resource with its sets and files",
    description="Sets come newest first, each with its files and their progress.",
)
async def get_boot_resource(
    service: ServiceDep, caller: CallerDep, request: Request, resource_id: ResourceId
) -> Response:
    with track_reads() as reads:
        resource = await service.get_boot_resource(caller, resource_id)
    return json_read(request, dump_resource(resource), (Family.BOOT_RESOURCE,), reads)


@router.delete(
    "/{resource_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(*COMMON_ERRORS, 404),
    summary="Delete a boot resource",
    description="Removes the resource with all its sets and files from MAAS; 204 when gone.",
)
async def delete_boot_resource(
    service: ServiceDep, caller: CallerDep, resource_id: ResourceId
) -> Response:
    await service.delete_boot_resource(caller, resource_id)
    return Response(status_code=204)
