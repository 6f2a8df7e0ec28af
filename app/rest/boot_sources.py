"""REST routes for boot sources and, nested under each, its selections (CRUD, and an
idempotent ensure keyed on os and release)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Path
from starlette.requests import Request
from starlette.responses import Response

from app.core.models import EnsureOutcome
from app.rest.deps import CallerDep, SelectionId, ServiceDep, SourceId
from app.rest.errors import COMMON_ERRORS, error_responses
from app.rest.links import LOCATION, SELECTION_LINKS, SOURCE_LINKS, answered, created
from app.rest.responses import json_read, json_write
from app.rest.schemas import (
    BootSourceCreate,
    BootSourceOut,
    BootSourceUpdate,
    SelectionCreate,
    SelectionEnsure,
    SelectionEnsured,
    SelectionOut,
    SelectionUpdate,
    decode_keyring,
)
from app.service import Family, track_reads

router = APIRouter(prefix="/boot-sources", tags=["boot-sources"])
selections = APIRouter(prefix="/boot-sources/{source_id}/selections", tags=["selections"])

PREFIX = "/api/v1/boot-sources"
_ONE = error_responses(*COMMON_ERRORS, 404)
_SOURCE = {**_ONE, **answered(200, SOURCE_LINKS)}
_SELECTION = {**_ONE, **answered(200, SELECTION_LINKS)}
_UPDATE_SOURCE = (
    "Only the fields given are sent to MAAS, which keeps the rest; the source must still have "
    "exactly one keyring afterwards, as on create (400 otherwise)."
)
_UPDATE_SELECTION = (
    "Only the fields given are sent to MAAS, which checks them against the source's image "
    "index (maas-api.md §7.2); a rejected value comes back as 400 with `details.fields`."
)


@router.get(
    "",
    response_model=list[BootSourceOut],
    responses=error_responses(*COMMON_ERRORS),
    summary="List boot sources",
    description="Every boot source with its keyring and, on MAAS 3.8 and later, its name, "
    "priority and flags.",
)
async def list_boot_sources(service: ServiceDep, caller: CallerDep, request: Request) -> Response:
    with track_reads() as reads:
        sources = await service.list_boot_sources(caller)
    return json_read(request, sources, (Family.BOOT_SOURCES,), reads)


@router.post(
    "",
    status_code=201,
    response_model=BootSourceOut,
    responses={**error_responses(*COMMON_ERRORS), **created(SOURCE_LINKS)},
    summary="Create a boot source",
    description="Give exactly one of `keyring_filename` (a path on the MAAS server) and "
    "`keyring_data` (the keyring, base64), as MAAS requires (maas-api.md §6.2).",
)
async def create_boot_source(
    service: ServiceDep, caller: CallerDep, body: BootSourceCreate
) -> Response:
    source = await service.create_boot_source(
        caller,
        url=body.url,
        keyring_filename=body.keyring_filename,
        keyring_data=decode_keyring(body.keyring_data),
        options=body.options(),
    )
    return json_write(source, 201, location=f"{PREFIX}/{source.id}")


@router.get(
    "/{source_id}",
    response_model=BootSourceOut,
    responses=_SOURCE,
    summary="One boot source",
    description="The boot source with its keyring; 404 when there is no such source.",
)
async def get_boot_source(
    service: ServiceDep, caller: CallerDep, request: Request, source_id: SourceId
) -> Response:
    with track_reads() as reads:
        source = await service.get_boot_source(caller, source_id)
    return json_read(request, source, (Family.BOOT_SOURCE,), reads)


@router.patch(
    "/{source_id}",
    response_model=BootSourceOut,
    responses=_SOURCE,
    summary="Update a boot source (partial: fields left out keep their values)",
    description=_UPDATE_SOURCE,
)
@router.put(
    "/{source_id}",
    name="put_boot_source",
    response_model=BootSourceOut,
    responses=_SOURCE,
    summary="Update a boot source (as PATCH: partial, like MAAS's own PUT)",
    description=_UPDATE_SOURCE,
)
async def update_boot_source(
    service: ServiceDep, caller: CallerDep, source_id: SourceId, body: BootSourceUpdate
) -> Response:
    source = await service.update_boot_source(
        caller,
        source_id,
        url=body.url,
        keyring_filename=body.keyring_filename,
        keyring_data=decode_keyring(body.keyring_data),
        options=body.options(),
    )
    return json_write(source)


@router.delete(
    "/{source_id}",
    status_code=204,
    response_class=Response,
    responses=_ONE,
    summary="Delete a boot source and its selections",
    description="Images already imported from it stay; 204 when gone.",
)
async def delete_boot_source(
    service: ServiceDep, caller: CallerDep, source_id: SourceId
) -> Response:
    await service.delete_boot_source(caller, source_id)
    return Response(status_code=204)


@selections.get(
    "",
    response_model=list[SelectionOut],
    responses=_ONE,
    summary="List a boot source's selections",
    description="What the source imports: one selection per os and release.",
)
async def list_selections(
    service: ServiceDep, caller: CallerDep, request: Request, source_id: SourceId
) -> Response:
    with track_reads() as reads:
        items = await service.list_selections(caller, source_id)
    return json_read(request, items, (Family.SELECTIONS,), reads)


@selections.post(
    "",
    status_code=201,
    response_model=SelectionOut,
    responses={**_ONE, **created(SELECTION_LINKS)},
    summary="Create a selection",
    description="MAAS checks os, release and the lists against the source's image index "
    "(maas-api.md §7.2); a rejected value comes back as 400 with `details.fields`.",
)
async def create_selection(
    service: ServiceDep, caller: CallerDep, source_id: SourceId, body: SelectionCreate
) -> Response:
    selection = await service.create_selection(
        caller,
        source_id,
        os=body.os,
        release=body.release,
        arches=body.arches,
        subarches=body.subarches,
        labels=body.labels,
    )
    location = f"{PREFIX}/{source_id}/selections/{selection.id}"
    return json_write(selection, 201, location=location)


@selections.put(
    "/{os}/{release}",
    response_model=SelectionEnsured,
    responses={
        **_SELECTION,
        201: {
            "model": SelectionEnsured,
            "description": "Created",
            "headers": LOCATION,
            "links": SELECTION_LINKS,
        },
    },
    summary="Ensure the selection of an os and release",
    description="Idempotent: creates the selection, updates its lists, or changes nothing when "
    "it already matches (no MAAS write). 201 when created, else 200; `outcome` says which. "
    "MAAS's auto-created default selection is an ordinary match.",
)
async def ensure_selection(
    service: ServiceDep,
    caller: CallerDep,
    source_id: SourceId,
    os: Annotated[str, Path(max_length=20)],
    release: Annotated[str, Path(max_length=20)],
    body: SelectionEnsure,
) -> Response:
    selection, outcome = await service.ensure_selection(
        caller,
        source_id,
        os=os,
        release=release,
        arches=body.arches,
        subarches=body.subarches,
        labels=body.labels,
    )
    created = outcome is EnsureOutcome.CREATED
    location = f"{PREFIX}/{source_id}/selections/{selection.id}" if created else None
    payload = {**dataclasses.asdict(selection), "outcome": outcome.value}
    return json_write(payload, 201 if created else 200, location=location)


@selections.get(
    "/{selection_id}",
    response_model=SelectionOut,
    responses=_SELECTION,
    summary="One selection",
    description="404 when the source has no such selection.",
)
async def get_selection(
    service: ServiceDep,
    caller: CallerDep,
    request: Request,
    source_id: SourceId,
    selection_id: SelectionId,
) -> Response:
    with track_reads() as reads:
        selection = await service.get_selection(caller, source_id, selection_id)
    return json_read(request, selection, (Family.SELECTIONS,), reads)


@selections.patch(
    "/{selection_id}",
    response_model=SelectionOut,
    responses=_SELECTION,
    summary="Update a selection (partial: fields left out keep their values)",
    description=_UPDATE_SELECTION,
)
@selections.put(
    "/{selection_id}",
    name="put_selection",
    response_model=SelectionOut,
    responses=_SELECTION,
    summary="Update a selection (as PATCH: partial, like MAAS's own PUT)",
    description=_UPDATE_SELECTION,
)
async def update_selection(
    service: ServiceDep,
    caller: CallerDep,
    source_id: SourceId,
    selection_id: SelectionId,
    body: SelectionUpdate,
) -> Response:
    selection = await service.update_selection(
        caller,
        source_id,
        selection_id,
        os=body.os,
        release=body.release,
        arches=body.arches,
        subarches=body.subarches,
        labels=body.labels,
    )
    return json_write(selection)


@selections.delete(
    "/{selection_id}",
    status_code=204,
    response_class=Response,
    responses=_ONE,
    summary="Delete a selection",
    description="The source stops importing that os and release; images already imported "
    "stay. 204 when gone.",
)
async def delete_selection(
    service: ServiceDep, caller: CallerDep, source_id: SourceId, selection_id: SelectionId
) -> Response:
    await service.delete_selection(caller, source_id, selection_id)
    return Response(status_code=204)
