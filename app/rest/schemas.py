"""REST request and response models (for validation and OpenAPI) and the fast JSON encoders."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from app.core import models

ResourceTypeName = Literal["synced", "uploaded", "generated"]

# Timestamps are UTC (app.maas.models makes them aware); naive ones are taken as UTC too.
_ORJSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=_ORJSON_OPTIONS)


# Responses: documented with pydantic, encoded with orjson, so large lists never go through
# FastAPI's jsonable_encoder (docs/architecture.md, "Performance model"). Sets, files, sources and
# selections are the service's dataclasses, already in this shape: orjson writes them field by
# field; only a boot resource is reshaped (dump_resource).


class BootResourceFileOut(BaseModel):
    id: str = Field(
        examples=["7/20260101/root.tgz"], description="Stable: <resource id>/<version>/<filename>."
    )
    filename: str = Field(examples=["root.tgz"])
    filetype: str = Field(examples=["root-tgz"], description="MAAS's stored file type.")
    size: int = Field(description="Declared total bytes.")
    sha256: str
    complete: bool
    progress: float = Field(description="Percentage 0-100 stored in MAAS.")


class BootResourceSetOut(BaseModel):
    id: str = Field(examples=["7/20260101"], description="Stable: <resource id>/<version>.")
    version: str = Field(examples=["20260101"], description="YYYYMMDD[.N]; newest first.")
    label: str = Field(examples=["uploaded", "stable"])
    size: int = Field(description="Declared total bytes of the set's files.")
    complete: bool
    progress: float
    files: list[BootResourceFileOut]


class BootResourceOut(BaseModel):
    id: int
    type: ResourceTypeName
    name: str = Field(examples=["ubuntu/jammy", "alma9"])
    os: str | None = Field(description="The OS of an os/release name.")
    release: str | None = Field(description="The release of an os/release name.")
    architecture: str = Field(examples=["amd64/generic"], description="arch/subarch.")
    subarches: list[str]
    title: str
    base_image: str | None = Field(examples=["ubuntu/jammy"])
    last_deployed: datetime | None
    complete: bool | None = Field(
        description="Whether the newest set is complete; null when sets were not read."
    )
    sets: list[BootResourceSetOut] | None = Field(
        default=None,
        description="Newest first. Present on one resource, on uploads and with "
        "`expand=sets`; absent from plain lists.",
    )


class ImportStatusOut(BaseModel):
    importing: bool
    incomplete: list[BootResourceOut] = Field(
        description="Resources whose newest set is not complete, with their sets."
    )


class ResourceProgressOut(BaseModel):
    id: int
    name: str = Field(examples=["ubuntu/jammy"])
    architecture: str = Field(examples=["amd64/generic"])
    version: str | None = Field(description="The newest set's version.")
    complete: bool
    progress: float = Field(description="Percentage 0-100 of the newest set.")


class ReadinessOut(BaseModel):
    ready: bool = Field(
        description="Every matching image's newest set is complete (none matching: false)."
    )
    importing: bool
    resources: list[ResourceProgressOut]


class ImportActionOut(BaseModel):
    importing: bool = Field(description="true once started; false once asked to stop.")


class BootSourceOut(BaseModel):
    id: int
    url: str
    keyring_filename: str = Field(description="A keyring path on the MAAS server, or empty.")
    keyring_data: str = Field(description="Base64 of the keyring's bytes, or empty.")
    created: datetime | None
    updated: datetime | None
    name: str | None = Field(default=None, description="MAAS 3.8 and later; null before.")
    priority: int | None = Field(
        default=None, description="Higher imports first. MAAS 3.8 and later; null before."
    )
    enabled: bool | None = Field(default=None, description="MAAS 3.8 and later; null before.")
    skip_keyring_verification: bool | None = Field(
        default=None, description="MAAS 3.8 and later; null before."
    )


class SelectionOut(BaseModel):
    id: int
    boot_source_id: int
    os: str
    release: str
    arches: list[str]
    subarches: list[str]
    labels: list[str]


def dump_resource(resource: models.BootResource) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": resource.id,
        "type": resource.type.maas_filter,
        "name": resource.name,
        "os": resource.os,
        "release": resource.release,
        "architecture": str(resource.architecture),
        "subarches": resource.subarches,
        "title": resource.title,
        "base_image": resource.base_image,
        "last_deployed": resource.last_deployed,
        "complete": resource.complete,
    }
    if resource.sets is not None:
        out["sets"] = resource.sets
    return out


def dump_import_status(status: models.ImportStatus) -> dict[str, Any]:
    return {
        "importing": status.importing,
        "incomplete": [dump_resource(r) for r in status.incomplete],
    }


BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
"""RFC 4648 base64 with its padding, which `base64.b64decode(validate=True)` always decodes."""

_END = "$(?!\\n)"
"""The end of a document pattern: `$` alone is the end of the text in ECMA-262 but also lets a
final newline through in Python's `re`, which schemathesis and jsonschema use."""

_KEYRING_DATA_SCHEMA: JsonDict = {"pattern": f"^{BASE64}{_END}", "contentEncoding": "base64"}


def _keyring_bytes(value: str | None) -> str | None:
    # The document's pattern, checked here so that it holds for every client; "" means none.
    if value is None or value == "":
        return None
    if re.fullmatch(BASE64, value) is None:
        raise ValueError("must be base64 (RFC 4648, with padding)")
    return value


def decode_keyring(value: str | None) -> bytes | None:
    """The raw keyring bytes MAAS wants as a file part (maas-api.md §6.3)."""
    return None if value is None else base64.b64decode(value, validate=True)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SourceOptions(_Body):
    """MAAS 3.8's own boot-source fields; a MAAS before 3.8 refuses them with 400."""

    name: str | None = Field(default=None, max_length=255, description="MAAS 3.8 and later.")
    priority: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,  # MAAS stores it in a Postgres integer and refuses more (400)
        description="Higher imports first. MAAS 3.8 and later.",
    )
    enabled: bool | None = Field(default=None, description="MAAS 3.8 and later.")
    skip_keyring_verification: bool | None = Field(default=None, description="MAAS 3.8 and later.")

    def options(self) -> models.SourceOptions:
        return models.SourceOptions(
            self.name, self.priority, self.enabled, self.skip_keyring_verification
        )


_URL_SCHEMA: JsonDict = {"format": "uri"}
"""MAAS takes an http(s) or ftp(s) URL of at most 200 characters (a Django URLField)."""


def _given(field: str) -> JsonDict:
    return {"required": [field], "properties": {field: {"type": "string", "minLength": 1}}}


_ONE_KEYRING: JsonDict = {
    # Under allOf, generated clients (openapi-python-client) keep one model with every field;
    # an anyOf beside the properties makes them a union of fragments without `url`.
    "allOf": [
        {
            "anyOf": [
                {"oneOf": [_given("keyring_filename"), _given("keyring_data")]},
                # MAAS verifies no keyring for a JSON index, nor, on 3.8, when told to skip it
                # (maas-api.md §6.2); a MAAS before 3.8 refuses skip_keyring_verification.
                {"properties": {"url": {"pattern": f"\\.json{_END}"}}},
                {
                    "required": ["skip_keyring_verification"],
                    "properties": {"skip_keyring_verification": {"const": True}},
                },
            ]
        }
    ]
}
"""MAAS's rule, which it enforces (400 under `__all__`): exactly one keyring, given as a
non-empty string; null and "" count as not given."""


class BootSourceCreate(_SourceOptions):
    """Exactly one of keyring_filename and keyring_data, unless MAAS verifies none."""

    model_config = ConfigDict(json_schema_extra=_ONE_KEYRING)

    url: str = Field(
        min_length=1,
        max_length=200,
        examples=["http://images.maas.io/ephemeral-v3/stable/"],
        json_schema_extra=_URL_SCHEMA,
    )
    keyring_filename: str | None = Field(
        default=None, description="Path of a keyring on the MAAS server."
    )
    keyring_data: str | None = Field(
        default=None,
        description="The keyring itself, base64-encoded. Give this or keyring_filename.",
        json_schema_extra=_KEYRING_DATA_SCHEMA,
    )

    _check_keyring = field_validator("keyring_data")(_keyring_bytes)


class BootSourceUpdate(_SourceOptions):
    """Partial: fields left out keep their values."""

    url: str | None = Field(
        default=None, min_length=1, max_length=200, json_schema_extra=_URL_SCHEMA
    )
    keyring_filename: str | None = None
    keyring_data: str | None = Field(
        default=None,
        description="The keyring itself, base64-encoded.",
        json_schema_extra=_KEYRING_DATA_SCHEMA,
    )

    _check_keyring = field_validator("keyring_data")(_keyring_bytes)


class SelectionCreate(_Body):
    os: str = Field(examples=["ubuntu"])
    release: str = Field(examples=["noble"])
    arches: list[str] | None = Field(
        default=None, examples=[["amd64"]], description='* = all; left out: ["*"]'
    )
    subarches: list[str] | None = Field(
        default=None, examples=[["*"]], description='Left out: ["*"]'
    )
    labels: list[str] | None = Field(default=None, examples=[["*"]], description='Left out: ["*"]')


class SelectionEnsure(_Body):
    """The lists a selection must have; left out: ["*"] (all)."""

    arches: list[str] | None = Field(default=None, examples=[["amd64", "arm64"]])
    subarches: list[str] | None = Field(default=None, examples=[["*"]])
    labels: list[str] | None = Field(default=None, examples=[["*"]])


class SelectionEnsured(SelectionOut):
    outcome: models.EnsureOutcome = Field(
        description="created, updated, or unchanged (MAAS was not written to)."
    )


class SelectionUpdate(_Body):
    """Partial: fields left out keep their values."""

    os: str | None = None
    release: str | None = None
    arches: list[str] | None = None
    subarches: list[str] | None = None
    labels: list[str] | None = None
