"""Typed models of MAAS 2.0 boot payloads, tolerant of the differences between MAAS versions."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, TypeAdapter


def _blank_to_none(value: object) -> object:
    return None if value == "" else value


def _assume_utc(value: datetime | None) -> datetime | None:
    # MAAS <= 3.5 emits naive timestamps, 3.6+ adds `Z` (maas-api.md §4.1, §9.17). Regions run
    # in UTC, as python-libmaas assumes; making every value aware keeps them comparable.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


MaasDatetime = Annotated[
    datetime | None, BeforeValidator(_blank_to_none), AfterValidator(_assume_utc)
]
"""A MAAS timestamp: naive or `Z`, with or without milliseconds; returned UTC-aware (or None)."""


def _null_to_empty(value: object) -> object:
    # Legacy selection rows can hold NULL arrays (maas-api.md §7.1).
    return [] if value is None else value


StrList = Annotated[list[str], BeforeValidator(_null_to_empty)]


class MaasModel(BaseModel):
    """Unknown keys are kept: MAAS merges `extra` into resources and adds fields by version."""

    model_config = ConfigDict(extra="allow", frozen=True)


class BootResourceFile(MaasModel):
    filename: str
    filetype: str
    sha256: str
    size: int
    complete: bool
    progress: float | None = None
    upload_uri: str | None = None
    filename_on_disk: str | None = None


class BootResourceSet(MaasModel):
    version: str
    label: str
    size: int
    complete: bool
    progress: float | None = None
    files: dict[str, BootResourceFile] = {}


class BootResource(MaasModel):
    id: int
    type: str
    """The display label (`Synced`, `Uploaded`, `Generated`), not the `?type=` token (§9.9)."""
    name: str
    architecture: str
    resource_uri: str | None = None
    last_deployed: MaasDatetime = None
    subarches: str | None = None
    """Comma-separated, as MAAS stores it in `extra` (maas-api.md §9.10)."""
    title: str | None = None
    base_image: str | None = None
    sets: dict[str, BootResourceSet] | None = None
    """Only on read-by-id and create; list items are shallow (maas-api.md §9.11)."""

    @property
    def newest_set(self) -> BootResourceSet | None:
        """The set clients upload to: `max(sets)` by string, as libmaas does (§11.1 item 6)."""
        if not self.sets:
            return None
        return self.sets[max(self.sets)]


class BootSource(MaasModel):
    id: int
    url: str
    keyring_filename: str = ""
    keyring_data: str = ""
    """Base64 of the keyring bytes on the way out (uploads send raw bytes, maas-api.md §6.3)."""
    created: MaasDatetime = None
    updated: MaasDatetime = None
    resource_uri: str | None = None
    # MAAS 3.8 only (maas-api.md §6.1).
    name: str | None = None
    priority: int | None = None
    enabled: bool | None = None
    skip_keyring_verification: bool | None = None

    def keyring_bytes(self) -> bytes:
        """The decoded keyring, or b"" when MAAS sent none or something that is not base64."""
        try:
            return base64.b64decode(self.keyring_data, validate=True)
        except (binascii.Error, ValueError):
            return b""


class BootSourceSelection(MaasModel):
    id: int
    boot_source_id: int
    os: str
    release: str
    arches: StrList = []
    subarches: StrList = []
    labels: StrList = []
    resource_uri: str | None = None


class MaasVersion(MaasModel):
    version: str
    subversion: str = ""
    capabilities: list[str] = []


class ApiDescription(MaasModel):
    """The `describe/` document; handlers are kept as plain JSON (maas-api.md §1.2)."""

    doc: str | None = None
    hash: str | None = None
    resources: list[dict[str, Any]] = []
    handlers: list[dict[str, Any]] = []


BOOT_RESOURCES: TypeAdapter[list[BootResource]] = TypeAdapter(list[BootResource])
BOOT_SOURCES: TypeAdapter[list[BootSource]] = TypeAdapter(list[BootSource])
BOOT_SOURCE_SELECTIONS: TypeAdapter[list[BootSourceSelection]] = TypeAdapter(
    list[BootSourceSelection]
)
