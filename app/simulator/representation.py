"""The JSON shapes MAAS emits for boot resources, sets, files, sources and selections."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from app.simulator.config import MaasVersion
from app.simulator.state import (
    GENERATED,
    TYPE_LABELS,
    UPLOADED,
    BootResource,
    BootResourceFile,
    BootResourceSet,
    BootSource,
    BootSourceSelection,
)

API_PREFIX = "/MAAS/api/2.0/"


def timestamp(value: datetime, version: MaasVersion) -> str:
    """DjangoJSONEncoder: milliseconds (none if zero); `Z` once USE_TZ is on (maas-api.md §4.1)."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"[:4]
    return text + "Z" if version.use_tz else text


def _file_progress(rfile: BootResourceFile, version: MaasVersion) -> float | int:
    received = min(rfile.received, rfile.size)
    if version.local_file_store:
        return 100.0 * received / rfile.size if rfile.size > 0 else 0.0
    # ≤3.4 LargeFile.progress is total/written, an inverted ratio, or 0 (maas-api.md §5.2).
    return rfile.size / received if received > 0 else 0


def file_dict(
    resource: BootResource, rfile: BootResourceFile, version: MaasVersion
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "filename": rfile.filename,
        "filetype": rfile.filetype,
        "sha256": rfile.sha256,
    }
    if version.local_file_store:
        data["filename_on_disk"] = rfile.filename_on_disk
    data["size"] = rfile.size
    data["complete"] = rfile.complete
    if not rfile.complete:
        data["progress"] = _file_progress(rfile, version)
        uploadable = resource.rtype == UPLOADED or (
            resource.rtype == GENERATED and not version.local_file_store
        )
        if uploadable:
            data["upload_uri"] = f"{API_PREFIX}boot-resources/{resource.id}/upload/{rfile.id}/"
    return data


def set_dict(
    resource: BootResource, resource_set: BootResourceSet, version: MaasVersion
) -> dict[str, Any]:
    complete = resource_set.complete
    data: dict[str, Any] = {
        "version": resource_set.version,
        "label": resource_set.label,
        "size": resource_set.total_size,
        "complete": complete,
    }
    if not complete:
        total = resource_set.total_size
        received = resource_set.received
        if version.local_file_store:
            data["progress"] = 100.0 * received / total if total > 0 else 0.0
        else:
            data["progress"] = 100.0 * received / total if received > 0 else 0
    data["files"] = {f.filename: file_dict(resource, f, version) for f in resource_set.files}
    return data


def resource_dict(
    resource: BootResource, version: MaasVersion, *, with_sets: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": resource.id,
        "type": TYPE_LABELS[resource.rtype],
        "name": resource.name,
        "architecture": resource.architecture,
        "resource_uri": f"{API_PREFIX}boot-resources/{resource.id}/",
    }
    if version.has_last_deployed:
        data["last_deployed"] = (
            timestamp(resource.last_deployed, version) if resource.last_deployed else None
        )
    # `extra` is merged into the top level (maas-api.md §5.2).
    data.update(resource.extra)
    if version.returns_base_image and resource.base_image:
        data["base_image"] = resource.base_image
    if with_sets:
        # Newest set first, keyed by version.
        data["sets"] = {s.version: set_dict(resource, s, version) for s in reversed(resource.sets)}
    return data


def source_dict(source: BootSource, version: MaasVersion) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": source.id,
        "url": source.url,
        "keyring_filename": source.keyring_filename,
        "keyring_data": base64.b64encode(source.keyring_data).decode("ascii"),
        "created": timestamp(source.created, version),
        "updated": timestamp(source.updated, version),
    }
    if version.entitlements:
        data["name"] = source.name
        data["priority"] = source.priority
        data["enabled"] = source.enabled
        data["skip_keyring_verification"] = source.skip_keyring_verification
    data["resource_uri"] = f"{API_PREFIX}boot-sources/{source.id}/"
    return data


def selection_dict(selection: BootSourceSelection) -> dict[str, Any]:
    return {
        "id": selection.id,
        "boot_source_id": selection.boot_source_id,
        "os": selection.os,
        "release": selection.release,
        "arches": list(selection.arches),
        "subarches": list(selection.subarches),
        "labels": list(selection.labels),
        "resource_uri": (
            f"{API_PREFIX}boot-sources/{selection.boot_source_id}/selections/{selection.id}/"
        ),
    }
