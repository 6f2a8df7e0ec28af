"""OpenAPI links: which operations take the ids an answer gives, for clients and for stateful
testing (schemathesis follows them, tests/rest/test_schemathesis.py)."""

from __future__ import annotations

from typing import Any

_ID = "$response.body#/id"
_SOURCE_ID = "$response.body#/boot_source_id"


def _link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters, "description": description}


def _source_links(source: str) -> dict[str, Any]:
    def to(operation_id: str, description: str) -> dict[str, Any]:
        return _link(operation_id, description, source_id=source)

    return {
        "GetBootSource": to("get_boot_source", "Read the source."),
        "UpdateBootSource": to("update_boot_source", "Change the source."),
        "PutBootSource": to("put_boot_source", "Change the source (PUT)."),
        "DeleteBootSource": to("delete_boot_source", "Delete the source."),
        "ListSelections": to("list_selections", "The source's selections."),
        "CreateSelection": to("create_selection", "Add a selection."),
        "EnsureSelection": to("ensure_selection", "Ensure a selection."),
    }


def _selection(operation_id: str, description: str) -> dict[str, Any]:
    return _link(operation_id, description, source_id=_SOURCE_ID, selection_id=_ID)


SOURCE_LINKS = _source_links(_ID)
"""From an answer that is a boot source."""

SELECTION_LINKS = {
    "GetSelection": _selection("get_selection", "Read the selection."),
    "UpdateSelection": _selection("update_selection", "Change the selection."),
    "PutSelection": _selection("put_selection", "Change the selection (PUT)."),
    "DeleteSelection": _selection("delete_selection", "Delete the selection."),
    **_source_links(_SOURCE_ID),
}
"""From an answer that is a selection: it and its source."""

RESOURCE_LINKS = {
    "GetBootResource": _link("get_boot_resource", "Read the resource.", resource_id=_ID),
    "DeleteBootResource": _link("delete_boot_resource", "Delete the resource.", resource_id=_ID),
}
"""From an answer that is a boot resource."""

LOCATION = {"Location": {"description": "The new object's URL.", "schema": {"type": "string"}}}


def created(links: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The `responses` entry of a 201 that made an object: where it is, what to do next."""
    return {201: {"description": "Created", "headers": LOCATION, "links": links}}


def answered(status: int, links: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The `responses` entry of an answer that is an object, with what to do next."""
    return {status: {"links": links}}
