"""The `describe/` document: boot handlers as MAAS describes them, with absolute URIs."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from app.simulator.config import MaasVersion

_PREFIX = "/MAAS/api/2.0/"


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    method: str
    op: str | None
    doc: str


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    name: str
    doc: str
    path: str
    params: tuple[str, ...]
    actions: tuple[Action, ...]
    anonymous: bool = False


def _crud(method: str, doc: str) -> Action:
    names = {"GET": "read", "POST": "create", "PUT": "update", "DELETE": "delete"}
    return Action(names[method], method, None, doc)


# The handlers every supported version describes; handler_specs sorts them by name.
_HANDLER_SPECS: tuple[HandlerSpec, ...] = (
    HandlerSpec(
        "BootResourcesHandler",
        "Manage the boot resources.",
        "boot-resources/",
        (),
        (
            _crud("POST", "Create a new boot resource. Upload the file in chunks afterwards."),
            Action("import", "POST", "import", "Import the boot resources."),
            Action("is_importing", "GET", "is_importing", "Get the status of importing resources."),
            _crud("GET", "List all boot resources."),
            Action("stop_import", "POST", "stop_import", "Stop importing the boot resources."),
        ),
    ),
    HandlerSpec(
        "BootResourceHandler",
        "Manage a boot resource.",
        "boot-resources/{id}/",
        ("id",),
        (
            _crud("DELETE", "Delete a boot resource by id."),
            _crud("GET", "Reads a boot resource by id."),
        ),
    ),
    HandlerSpec(
        "BootSourcesHandler",
        "Manage the collection of boot sources.",
        "boot-sources/",
        (),
        (
            _crud("POST", "Create a new boot source."),
            _crud("GET", "List boot sources."),
        ),
    ),
    HandlerSpec(
        "BootSourceHandler",
        "Manage a boot source.",
        "boot-sources/{id}/",
        ("id",),
        (
            _crud("DELETE", "Delete a specific boot source."),
            _crud("GET", "Read a boot source."),
            _crud("PUT", "Update a specific boot source."),
        ),
    ),
    HandlerSpec(
        "BootSourceSelectionsHandler",
        "Manage the collection of boot source selections.",
        "boot-sources/{boot_source_id}/selections/",
        ("boot_source_id",),
        (
            _crud("POST", "Create a new boot source selection."),
            _crud("GET", "List boot source selections."),
        ),
    ),
    HandlerSpec(
        "BootSourceSelectionHandler",
        "Manage a boot source selection.",
        "boot-sources/{boot_source_id}/selections/{id}/",
        ("boot_source_id", "id"),
        (
            _crud("DELETE", "Delete a specific boot source selection."),
            _crud("GET", "Read a boot source selection."),
            _crud("PUT", "Update a boot source selection."),
        ),
    ),
    HandlerSpec(
        "VersionHandler",
        "Information about this MAAS instance.",
        "version/",
        (),
        (_crud("GET", "Version and capabilities of this MAAS instance."),),
        anonymous=True,
    ),
)
# 3.8 stopped hiding the upload handler from `describe/`.
_UPLOAD_SPEC = HandlerSpec(
    "BootResourceFileUploadHandler",
    "Upload a boot resource file.",
    "boot-resources/{resource_id}/upload/{id}/",
    ("resource_id", "id"),
    (_crud("PUT", "Uploads a chunk of boot resource file."),),
)


def handler_specs(version: MaasVersion) -> tuple[HandlerSpec, ...]:
    """The handlers this simulator serves; the 3.8 upload handler is no longer hidden."""
    specs = [*_HANDLER_SPECS, _UPLOAD_SPEC] if version.at_least(3, 8) else list(_HANDLER_SPECS)
    return tuple(sorted(specs, key=lambda spec: spec.name))


def _describe_handler(spec: HandlerSpec, base_uri: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": spec.name,
        "doc": spec.doc,
        "params": list(spec.params),
        "path": _PREFIX + spec.path,
        "actions": [
            {
                "name": a.name,
                "method": a.method,
                "op": a.op,
                "restful": a.op is None,
                "doc": a.doc,
            }
            for a in sorted(spec.actions, key=lambda a: a.name)
        ],
    }
    if base_uri is not None:
        data["uri"] = base_uri + _PREFIX + spec.path
    return data


@functools.lru_cache(maxsize=16)
def api_hash(version: MaasVersion) -> str:
    """SHA-1 of the description without URIs, so the hash does not depend on the Host."""
    canonical = [_describe_handler(spec, None) for spec in handler_specs(version)]
    return hashlib.sha1(
        json.dumps(canonical, sort_keys=True).encode("utf-8"), usedforsecurity=False
    ).hexdigest()


@functools.lru_cache(maxsize=64)
def describe_document(version: MaasVersion, base_uri: str) -> bytes:
    """The body of `describe/`, with handler URIs built from the request's scheme and Host."""
    resources: list[dict[str, Any]] = []
    handlers: list[dict[str, Any]] = []
    for spec in handler_specs(version):
        described = _describe_handler(spec, base_uri)
        handlers.append(described)
        if spec.anonymous:
            resources.append({"name": spec.name, "anon": described, "auth": None})
        else:
            resources.append({"name": spec.name, "anon": None, "auth": described})
    document = {
        "doc": "MAAS API",
        "hash": api_hash(version),
        "resources": resources,
        "handlers": handlers,
    }
    return json.dumps(document, sort_keys=True).encode("utf-8")
