"""MAAS payloads as the gateway's models: what both faces return."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from app.cache import StoredResponse as StoredResponse  # what stored_response hands the faces
from app.core.models import (
    Architecture,
    BootResource,
    BootResourceFile,
    BootResourceSet,
    BootResourceType,
    BootSource,
    BootSourceSelection,
)
from app.maas import models as maas

if TYPE_CHECKING:
    pass


def _timestamp(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


def to_boot_resource(resource: maas.BootResource) -> BootResource:
    os_name, sep, release = resource.name.partition("/")
    subarches = [s for s in (resource.subarches or "").split(",") if s]
    sets = None
    if resource.sets is not None:
        # Newest first: set versions are YYYYMMDD[.N] and compare as strings (maas-api.md §11.1).
        sets = [
            to_boot_resource_set(resource.id, resource.sets[key])
            for key in sorted(resource.sets, reverse=True)
        ]
    return BootResource(
        id=resource.id,
        name=resource.name,
        os=os_name if sep else None,
        release=release if sep else None,
        architecture=Architecture.parse(resource.architecture),
        title=resource.title or "",
        type=BootResourceType.from_maas_label(resource.type),
        subarches=subarches,
        last_deployed=_timestamp(resource.last_deployed),
        base_image=resource.base_image or None,
        sets=sets,
    )


def to_boot_resource_set(resource_id: int, item: maas.BootResourceSet) -> BootResourceSet:
    set_id = f"{resource_id}/{item.version}"
    files = [to_boot_resource_file(set_id, item.files[name]) for name in sorted(item.files)]
    return BootResourceSet(
        id=set_id,
        version=item.version,
        label=item.label,
        size=item.size,
        complete=item.complete,
        progress=100.0 if item.complete else float(item.progress or 0.0),
        files=files,
    )


def to_boot_resource_file(set_id: str, item: maas.BootResourceFile) -> BootResourceFile:
    return BootResourceFile(
        id=f"{set_id}/{item.filename}",
        filename=item.filename,
        filetype=item.filetype,
        size=item.size,
        sha256=item.sha256,
        complete=item.complete,
        progress=100.0 if item.complete else float(item.progress or 0.0),
    )


def to_boot_source(source: maas.BootSource) -> BootSource:
    return BootSource(
        id=source.id,
        url=source.url,
        keyring_filename=source.keyring_filename or "",
        keyring_data=source.keyring_data or "",
        created=_timestamp(source.created),
        updated=_timestamp(source.updated),
        name=source.name,
        priority=source.priority,
        enabled=source.enabled,
        skip_keyring_verification=source.skip_keyring_verification,
    )


def to_selection(selection: maas.BootSourceSelection) -> BootSourceSelection:
    return BootSourceSelection(
        id=selection.id,
        boot_source_id=selection.boot_source_id,
        os=selection.os,
        release=selection.release,
        arches=list(selection.arches or []),
        subarches=list(selection.subarches or []),
        labels=list(selection.labels or []),
    )
