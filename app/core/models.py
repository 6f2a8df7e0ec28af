"""Gateway-facing models of boot resources, sets, files, sources and selections (no MAAS URIs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class BootResourceType(StrEnum):
    SYNCED = "SYNCED"
    UPLOADED = "UPLOADED"
    GENERATED = "GENERATED"

    @property
    def maas_filter(self) -> str:
        """The lowercase token MAAS's `?type=` takes (maas-api.md §5.1, §9.9)."""
        return self.value.lower()

    @classmethod
    def from_maas_label(cls, label: str) -> BootResourceType:
        """MAAS returns the display label ("Synced"), not the filter token (maas-api.md §5.2)."""
        return cls(label.strip().upper())


@dataclass(slots=True, frozen=True)
class Architecture:
    arch: str
    subarch: str

    @classmethod
    def parse(cls, value: str) -> Architecture:
        arch, _, subarch = value.partition("/")
        return cls(arch=arch, subarch=subarch)

    def __str__(self) -> str:
        return f"{self.arch}/{self.subarch}" if self.subarch else self.arch


@dataclass(slots=True, frozen=True)
class BootResourceFile:
    id: str
    """`<resource id>/<set version>/<filename>`: stable, unlike MAAS's own file ids."""
    filename: str
    filetype: str
    size: int
    sha256: str
    complete: bool
    progress: float


@dataclass(slots=True, frozen=True)
class BootResourceSet:
    id: str
    """`<resource id>/<version>`: what a client cache keeps the set under."""
    version: str
    label: str
    size: int
    complete: bool
    progress: float
    files: list[BootResourceFile]


@dataclass(slots=True, frozen=True)
class BootResource:
    """A boot resource; `sets` is None when it came from MAAS's shallow list (maas-api.md §9.11)."""

    id: int
    name: str
    os: str | None
    release: str | None
    architecture: Architecture
    title: str
    type: BootResourceType
    subarches: list[str]
    last_deployed: datetime | None
    base_image: str | None
    sets: list[BootResourceSet] | None = None

    @property
    def latest_set(self) -> BootResourceSet | None:
        return self.sets[0] if self.sets else None

    @property
    def complete(self) -> bool | None:
        """Whether the newest set is complete; None when the sets were not read."""
        if self.sets is None:
            return None
        return bool(self.sets) and self.sets[0].complete


@dataclass(slots=True, frozen=True)
class BootSource:
    id: int
    url: str
    keyring_filename: str
    keyring_data: str
    created: datetime | None
    updated: datetime | None
    # MAAS 3.8's own fields (maas-api.md §6.1); None from earlier versions.
    name: str | None = None
    priority: int | None = None
    enabled: bool | None = None
    skip_keyring_verification: bool | None = None


@dataclass(slots=True, frozen=True)
class SourceOptions:
    """MAAS 3.8's own boot-source fields, to set (None: left as they are, maas-api.md §6.1)."""

    name: str | None = None
    priority: int | None = None
    enabled: bool | None = None
    skip_keyring_verification: bool | None = None

    def given(self) -> dict[str, str | int | bool]:
        return {k: v for k in self.__slots__ if (v := getattr(self, k)) is not None}


class EnsureOutcome(StrEnum):
    """What ensuring a declared object did: made it, changed it, or found it as declared."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(slots=True, frozen=True)
class BootSourceSelection:
    id: int
    boot_source_id: int
    os: str
    release: str
    arches: list[str] = field(default_factory=list)
    subarches: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class ImportStatus:
    importing: bool
    incomplete: list[BootResource]


@dataclass(slots=True, frozen=True)
class BootResourceFilter:
    type: BootResourceType | None = None
    os: str | None = None
    release: str | None = None
    architecture: str | None = None
    name: str | None = None

    def matches(self, resource: BootResource) -> bool:
        if self.type is not None and resource.type is not self.type:
            return False
        if self.os is not None and resource.os != self.os:
            return False
        if self.release is not None and resource.release != self.release:
            return False
        if self.name is not None and resource.name != self.name:
            return False
        if self.architecture is not None:
            wanted = self.architecture
            if "/" in wanted:
                return str(resource.architecture) == wanted
            return resource.architecture.arch == wanted
        return True


@dataclass(slots=True, frozen=True)
class ResourceProgress:
    id: int
    name: str
    architecture: str
    version: str | None
    complete: bool
    progress: float


@dataclass(slots=True, frozen=True)
class ImportProgress:
    importing: bool
    resources: list[ResourceProgress]


@dataclass(slots=True, frozen=True)
class ImageSelector:
    """Which synced images a caller waits for; None matches any."""

    os: str | None = None
    release: str | None = None
    arches: frozenset[str] | None = None

    def matches(self, resource: ResourceProgress) -> bool:
        os_name, _, release = resource.name.partition("/")
        arch = resource.architecture.partition("/")[0]
        return (
            (self.os is None or self.os == os_name)
            and (self.release is None or self.release == release)
            and (self.arches is None or arch in self.arches)
        )

    def readiness(self, progress: ImportProgress) -> Readiness:
        resources = [r for r in progress.resources if self.matches(r)]
        ready = bool(resources) and all(r.complete for r in resources)
        return Readiness(ready=ready, importing=progress.importing, resources=resources)


@dataclass(slots=True, frozen=True)
class Readiness:
    """The images a selector matches, and whether every one's newest set is complete (none
    matching is not ready: they may not have been created yet)."""

    ready: bool
    importing: bool
    resources: list[ResourceProgress]
