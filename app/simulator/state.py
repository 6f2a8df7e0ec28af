"""In-memory MAAS model: boot resources, sets, files, sources, selections, image index, imports."""

from __future__ import annotations

import functools
import hashlib
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from app.simulator.config import MaasVersion

# BOOT_RESOURCE_TYPE database integers (maas-api.md §5.2).
SYNCED = 0
GENERATED = 1
UPLOADED = 2
TYPE_LABELS: dict[int, str] = {SYNCED: "Synced", GENERATED: "Generated", UPLOADED: "Uploaded"}

# OperatingSystemRegistry, in registration order (provisioningserver/drivers/osystem).
SUPPORTED_OSYSTEMS: tuple[str, ...] = (
    "ubuntu",
    "ubuntu-core",
    "bootloader",
    "centos",
    "rhel",
    "custom",
    "windows",
    "suse",
    "esxi",
    "ol",
)
LINUX_OSYSTEMS: tuple[str, ...] = ("ubuntu", "centos", "rhel", "ol")
UBUNTU_CODENAMES: frozenset[str] = frozenset(
    {
        "xenial",
        "bionic",
        "focal",
        "jammy",
        "kinetic",
        "lunar",
        "mantic",
        "noble",
        "oracular",
        "plucky",
    }
)

# Upload `filetype` parameter → stored BOOT_RESOURCE_FILE_TYPE (maas-api.md §5.8).
UPLOAD_FILETYPES: dict[str, str] = {
    "tgz": "root-tgz",
    "tbz": "root-tbz",
    "txz": "root-txz",
    "ddtgz": "root-dd",
    "ddtbz": "root-dd.tar.bz2",
    "ddtxz": "root-dd.tar.xz",
    "ddtar": "root-dd.tar",
    "ddbz2": "root-dd.bz2",
    "ddgz": "root-dd.gz",
    "ddxz": "root-dd.xz",
    "ddraw": "root-dd.raw",
}
# 3.5+ names root tarballs with an extension (get_uploaded_filename).
_UPLOADED_FILENAMES: dict[str, str] = {
    "root-tgz": "root.tgz",
    "root-tbz": "root.tbz",
    "root-txz": "root.txz",
}
_XINSTALL_TYPES = frozenset({"squashfs", "root-image.gz", "root-tgz", "root-dd"})

# Seeded timestamps are relative to this instant, so a seed always gives the same state.
REFERENCE_TIME = datetime(2025, 6, 2, 8, 0, 0, tzinfo=UTC)

# What images.maas.io offers: LTS releases and the interim ones after noble, so a client can
# select a release the region does not have yet.
_UBUNTU_RELEASES: tuple[tuple[str, str], ...] = (
    ("bionic", "18.04"),
    ("focal", "20.04"),
    ("jammy", "22.04"),
    ("noble", "24.04"),
    ("oracular", "24.10"),
    ("plucky", "25.04"),
)
_ARCHES: tuple[str, ...] = ("amd64", "arm64", "ppc64el", "s390x")
# (os, release, arch, file name of the bootloader archive)
_BOOTLOADERS: tuple[tuple[str, str, str, str], ...] = (
    ("grub-efi-signed", "uefi", "amd64", "grub2-signed.tar.xz"),
    ("grub-efi", "uefi", "arm64", "grub2.tar.xz"),
    ("grub-ieee1275", "open-firmware", "ppc64el", "grub2-ieee1275.tar.xz"),
    ("pxelinux", "pxe", "i386", "syslinux.tar.xz"),
)
_GA_SERIES: tuple[str, ...] = (
    "16.04",
    "16.10",
    "17.04",
    "17.10",
    "18.04",
    "18.10",
    "19.04",
    "19.10",
    "20.04",
    "20.10",
    "21.04",
    "21.10",
    "22.04",
    "22.10",
    "23.04",
    "23.10",
    "24.04",
)
_LEGACY_HWE: tuple[str, ...] = tuple(f"hwe-{letter}" for letter in "pqrstuvw")


@dataclass(frozen=True, slots=True)
class ImageProduct:
    """One row of a source's image index (MAAS's BootSourceCache)."""

    os: str
    release: str
    arch: str
    subarch: str
    label: str
    title: str
    bootloader_file: str | None = None

    @property
    def name(self) -> str:
        return f"{self.os}/{self.release}"

    @property
    def architecture(self) -> str:
        return f"{self.arch}/{self.subarch}"


def _compatible_subarches(series: str, subarch: str) -> str:
    """The comma-separated `subarches` MAAS stores in a synced resource's `extra`."""
    if subarch == "generic":
        return "generic"
    older = [f"ga-{ga}" for ga in _GA_SERIES if ga <= series]
    names = ["generic", *_LEGACY_HWE, *older]
    if subarch.startswith("hwe-"):
        names.append(subarch)
    return ",".join(names)


@functools.lru_cache(maxsize=64)
def image_index(url: str) -> tuple[ImageProduct, ...]:
    """What MAAS's cache holds for a source URL.

    Only images.maas.io streams can be fetched; any other URL leaves the cache empty,
    so selections on it fail validation as in a real MAAS (maas-api.md §11.1 item 9).
    """
    parts = urlsplit(url)
    if parts.hostname != "images.maas.io":
        return ()
    stream_labels: tuple[str, ...]
    noble_extra: tuple[str, ...]
    if "candidate" in parts.path:
        stream_labels, noble_extra = ("candidate",), ()
    elif "daily" in parts.path:
        stream_labels, noble_extra = ("daily",), ()
    else:
        stream_labels, noble_extra = ("stable",), ("candidate",)
    products: list[ImageProduct] = []
    for release, series in _UBUNTU_RELEASES:
        labels = stream_labels + (noble_extra if release == "noble" else ())
        lts = series.endswith(".04") and int(series[:2]) % 2 == 0
        title = f"Ubuntu {series} LTS" if lts else f"Ubuntu {series}"
        for arch in _ARCHES:
            for subarch in ("generic", f"ga-{series}", f"hwe-{series}"):
                for label in labels:
                    products.append(ImageProduct("ubuntu", release, arch, subarch, label, title))
    for os_name, release, arch, filename in _BOOTLOADERS:
        products.append(
            ImageProduct(os_name, release, arch, "generic", stream_labels[0], "", filename)
        )
    return tuple(products)


@dataclass(slots=True, eq=False)
class BootResourceFile:
    id: int
    filename: str
    filetype: str
    sha256: str
    size: int
    # Bytes this (single) region holds; for synced files the import drives it.
    received: int = 0
    hasher: Any = None

    @property
    def complete(self) -> bool:
        return self.received >= self.size

    @property
    def filename_on_disk(self) -> str:
        # BootResourceFile.objects.calculate_filename_on_disk: the short sha.
        return self.sha256[:7]


@dataclass(slots=True, eq=False)
class SyncProgress:
    """A synced set being copied in by an import: `base` % done before this run."""

    base: float
    speed: float

    def percent(self, elapsed: float, duration: float) -> float:
        if duration <= 0:
            return 100.0
        fraction = min(1.0, elapsed / (duration * self.speed))
        return self.base + (100.0 - self.base) * fraction


@dataclass(slots=True, eq=False)
class BootResourceSet:
    id: int
    version: str
    label: str
    files: list[BootResourceFile] = field(default_factory=list)
    sync: SyncProgress | None = None

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def received(self) -> int:
        return sum(min(f.received, f.size) for f in self.files)

    @property
    def complete(self) -> bool:
        return bool(self.files) and all(f.complete for f in self.files)


@dataclass(slots=True, eq=False)
class BootResource:
    id: int
    rtype: int
    name: str
    architecture: str
    extra: dict[str, str] = field(default_factory=dict)
    base_image: str = ""
    last_deployed: datetime | None = None
    sets: list[BootResourceSet] = field(default_factory=list)

    def latest_complete_set(self) -> BootResourceSet | None:
        for resource_set in reversed(self.sets):
            if resource_set.complete:
                return resource_set
        return None


@dataclass(slots=True, eq=False)
class BootSource:
    id: int
    url: str
    keyring_filename: str
    keyring_data: bytes
    created: datetime
    updated: datetime
    name: str
    priority: int
    enabled: bool = True
    skip_keyring_verification: bool = False


@dataclass(slots=True, eq=False)
class BootSourceSelection:
    id: int
    boot_source_id: int
    os: str
    release: str
    arches: list[str]
    subarches: list[str]
    labels: list[str]


@dataclass(slots=True, eq=False)
class ImportRun:
    started: float
    duration: float
    targets: set[tuple[str, str]]
    syncing: list[tuple[BootResource, BootResourceSet]]
    stopped: bool = False


def _matches(wanted: list[str], value: str) -> bool:
    return "*" in wanted or value in wanted


def is_supported_base_release(os_name: str, release: str) -> bool:
    """OperatingSystem.is_release_supported for the Linux OSes a custom image can build on."""
    if os_name == "ubuntu":
        return release in UBUNTU_CODENAMES
    return re.fullmatch(rf"(?:{os_name})?\d{{1,2}}(?:\.\d{{1,2}})?", release) is not None


class _UploadSeed(NamedTuple):
    name: str
    architecture: str
    title: str
    base_image: str
    filetype: str
    sets: int


# The custom images every seeded region has, whatever `extra_resources` asks for.
_SEEDED_UPLOADS: tuple[_UploadSeed, ...] = (
    _UploadSeed("alma9", "amd64/generic", "AlmaLinux 9", "rhel/9", "tgz", 2),
    _UploadSeed("rocky8", "amd64/generic", "Rocky Linux 8", "rhel/8", "ddtgz", 1),
    _UploadSeed(
        "ubuntu-jammy-cis", "amd64/generic", "Ubuntu 22.04 CIS hardened", "ubuntu/jammy", "tgz", 1
    ),
    _UploadSeed("windows/win2022", "amd64/generic", "Windows Server 2022", "", "ddtgz", 1),
    _UploadSeed("ol9-arm", "arm64/generic", "Oracle Linux 9 (arm64)", "ol/9", "txz", 1),
)
_EXTRA_BASES: tuple[str, ...] = (
    "rhel/9",
    "rhel/8",
    "ubuntu/jammy",
    "ubuntu/noble",
    "centos/7",
    "ol/9",
)
_EXTRA_FAMILIES: tuple[str, ...] = (
    "alma",
    "rocky",
    "rhel-sap",
    "centos-stream",
    "ubuntu-gpu",
    "debian",
    "sles",
)
_EXTRA_FILETYPES: tuple[str, ...] = ("tgz", "tgz", "ddtgz", "txz", "ddxz", "ddraw")


def _extra_uploads(count: int) -> list[_UploadSeed]:
    """`count` more custom images for bulk tests, cycling families, bases and file types."""
    uploads: list[_UploadSeed] = []
    for index in range(count):
        family = _EXTRA_FAMILIES[index % len(_EXTRA_FAMILIES)]
        uploads.append(
            _UploadSeed(
                name=f"{family}-{index + 1:03d}",
                architecture="arm64/generic" if index % 5 == 4 else "amd64/generic",
                title=f"{family.replace('-', ' ').title()} build {index + 1}",
                base_image=_EXTRA_BASES[index % len(_EXTRA_BASES)],
                filetype=_EXTRA_FILETYPES[index % len(_EXTRA_FILETYPES)],
                sets=1 + (index % 3 == 0),
            )
        )
    return uploads


class MaasState:
    """Everything the simulated region stores. Callers hold the simulator's lock."""

    def __init__(
        self,
        version: MaasVersion,
        rng: random.Random,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.version = version
        self.rng = rng
        self.clock = clock
        self.wallclock = wallclock
        self.resources: dict[int, BootResource] = {}
        self.files: dict[int, BootResourceFile] = {}
        self.sources: dict[int, BootSource] = {}
        self.selections: dict[int, BootSourceSelection] = {}
        self.run: ImportRun | None = None
        self._ids: dict[str, int] = {}

    def _next_id(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    def _sha256(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    # -- seeding ---------------------------------------------------------------------------

    def seed(self, extra_resources: int) -> None:
        """A realistic region: the default source, selections, synced and uploaded images."""
        self._seed_default_source()
        for (name, architecture), product in self._targets().items():
            self._seed_synced(name, architecture, product)
        for upload in (*_SEEDED_UPLOADS, *_extra_uploads(extra_resources)):
            self._seed_uploaded(upload)

    def _jittered(self, instant: datetime) -> datetime:
        return instant.replace(microsecond=self.rng.randint(1000, 999999))

    def _deployed_within(self, hours: int) -> datetime:
        return self._jittered(REFERENCE_TIME - timedelta(hours=self.rng.randint(1, hours)))

    def _seed_default_source(self) -> None:
        rng = self.rng
        created = self._jittered(
            REFERENCE_TIME - timedelta(days=rng.randint(200, 400), seconds=rng.random())
        )
        default_source = BootSource(
            id=self._next_id("source"),
            url="http://images.maas.io/ephemeral-v3/stable/",
            keyring_filename="/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg",
            keyring_data=b"",
            created=created,
            updated=created,
            name="http://images.maas.io/ephemeral-v3/stable/",
            priority=1,
        )
        self.sources[default_source.id] = default_source
        releases = list(self.version.seeded_releases)
        if self.version.commissioning_release not in releases:
            releases.insert(0, self.version.commissioning_release)
        for release in releases:
            self.add_selection(
                default_source.id, "ubuntu", release, ["amd64", "arm64"], ["*"], ["*"]
            )

    def _seed_synced(self, name: str, architecture: str, product: ImageProduct) -> None:
        """One image already imported from the default source, fully downloaded."""
        rng = self.rng
        resource = self._new_resource(SYNCED, name, architecture, product)
        version = (REFERENCE_TIME - timedelta(days=rng.randint(3, 60))).strftime("%Y%m%d")
        resource_set = self._new_set(resource, version, product.label, self._synced_files(product))
        for rfile in resource_set.files:
            rfile.received = rfile.size
        if (
            self.version.has_last_deployed
            and product.bootloader_file is None
            and product.arch == "amd64"
            and rng.random() < 0.6
        ):
            resource.last_deployed = self._deployed_within(900)

    def _seed_uploaded(self, upload: _UploadSeed) -> None:
        """One custom image with `upload.sets` complete versions, days or weeks apart."""
        rng = self.rng
        resource = self._new_resource(UPLOADED, upload.name, upload.architecture, None)
        resource.extra = {"subarches": upload.architecture.split("/")[1], "title": upload.title}
        resource.base_image = upload.base_image if self.version.has_base_image else ""
        day = REFERENCE_TIME - timedelta(days=rng.randint(20, 120))
        stored = UPLOAD_FILETYPES[upload.filetype]
        for position in range(upload.sets):
            rfile = self._new_file(
                self.uploaded_filename(stored), stored, self._sha256(), rng.randint(400, 2600) << 20
            )
            rfile.received = rfile.size
            version = (day + timedelta(days=position * rng.randint(5, 30))).strftime("%Y%m%d")
            self._new_set(resource, version, "uploaded", [rfile])
        if self.version.has_last_deployed and rng.random() < 0.3:
            resource.last_deployed = self._deployed_within(300)

    def _new_resource(
        self, rtype: int, name: str, architecture: str, product: ImageProduct | None
    ) -> BootResource:
        resource = BootResource(self._next_id("resource"), rtype, name, architecture)
        if product is not None and product.bootloader_file is None:
            series = product.title.split()[1]
            resource.extra = {
                "subarches": _compatible_subarches(series, product.subarch),
                "title": product.title,
            }
        self.resources[resource.id] = resource
        return resource

    def _new_set(
        self, resource: BootResource, version: str, label: str, files: list[BootResourceFile]
    ) -> BootResourceSet:
        resource_set = BootResourceSet(self._next_id("set"), version, label, files)
        resource.sets.append(resource_set)
        return resource_set

    def _new_file(self, filename: str, filetype: str, sha256: str, size: int) -> BootResourceFile:
        rfile = BootResourceFile(self._next_id("file"), filename, filetype, sha256, size)
        self.files[rfile.id] = rfile
        return rfile

    def _synced_files(self, product: ImageProduct) -> list[BootResourceFile]:
        rng = self.rng
        if product.bootloader_file is not None:
            size = rng.randint(700_000, 6_500_000)
            return [self._new_file(product.bootloader_file, "archive.tar.xz", self._sha256(), size)]
        return [
            self._new_file(
                "boot-initrd", "boot-initrd", self._sha256(), rng.randint(60, 125) << 20
            ),
            self._new_file("boot-kernel", "boot-kernel", self._sha256(), rng.randint(11, 16) << 20),
            self._new_file("squashfs", "squashfs", self._sha256(), rng.randint(270, 430) << 20),
        ]

    def uploaded_filename(self, filetype: str) -> str:
        if self.version.local_file_store:
            return _UPLOADED_FILENAMES.get(filetype, filetype)
        return filetype

    # -- image index and selections ----------------------------------------------------------

    def cache_products(self) -> Iterable[tuple[BootSource, ImageProduct]]:
        for source in self.sources.values():
            if self.version.entitlements and not source.enabled:
                continue
            for product in image_index(source.url):
                yield source, product

    def _targets(self) -> dict[tuple[str, str], ImageProduct]:
        """(name, architecture) of every synced resource the selections ask for."""
        targets: dict[tuple[str, str], ImageProduct] = {}
        for selection in sorted(self.selections.values(), key=lambda s: s.id):
            source = self.sources.get(selection.boot_source_id)
            if source is None or (self.version.entitlements and not source.enabled):
                continue
            for product in image_index(source.url):
                if product.bootloader_file is not None:
                    continue
                if selection.os and product.os != selection.os:
                    continue
                if product.release != selection.release:
                    continue
                if not (
                    _matches(selection.arches, product.arch)
                    and _matches(selection.subarches, product.subarch)
                    and _matches(selection.labels, product.label)
                ):
                    continue
                targets.setdefault((product.name, product.architecture), product)
        # Bootloaders are always synced from every source that offers them.
        for _, product in self.cache_products():
            if product.bootloader_file is not None:
                targets.setdefault((product.name, product.architecture), product)
        return targets

    def add_selection(
        self,
        source_id: int,
        os_name: str,
        release: str,
        arches: list[str],
        subarches: list[str],
        labels: list[str],
    ) -> BootSourceSelection:
        selection = BootSourceSelection(
            self._next_id("selection"), source_id, os_name, release, arches, subarches, labels
        )
        self.selections[selection.id] = selection
        return selection

    def selections_of(self, source_id: int) -> list[BootSourceSelection]:
        return sorted(
            (s for s in self.selections.values() if s.boot_source_id == source_id),
            key=lambda s: s.id,
        )

    def reserved_names(self) -> list[str]:
        """BootResourceForm._get_reserved_names: cached os/release, their parts, OS names."""
        names = sorted({p.name for _, p in self.cache_products()})
        parts = [piece for name in names for piece in name.split("/")]
        return [*names, *parts, *SUPPORTED_OSYSTEMS]

    def usable_architectures(self) -> list[str]:
        """BootResourceManager.get_usable_architectures (maas-api.md §5.4)."""
        arches: set[str] = set()
        for resource in self.resources.values():
            resource_set = resource.latest_complete_set()
            if resource_set is None:
                continue
            types = {f.filetype for f in resource_set.files}
            commissionable = {"boot-kernel", "boot-initrd"} <= types and bool(
                types & {"squashfs", "root-image.gz"}
            )
            if not (commissionable and types & _XINSTALL_TYPES):
                continue
            arches.add(resource.architecture)
            base = resource.architecture.split("/")[0]
            for key in ("subarches", "platform", "supported_platforms"):
                for sub in resource.extra.get(key, "").split(","):
                    if sub:
                        arches.add(f"{base}/{sub}")
        return sorted(arches)

    # -- import progression ------------------------------------------------------------------

    def advance(self) -> None:
        """Bring the running import up to now; finish it once its duration has passed."""
        run = self.run
        if run is None or run.stopped:
            return
        elapsed = self.clock() - run.started
        for _, resource_set in run.syncing:
            if resource_set.sync is None:
                continue
            percent = resource_set.sync.percent(elapsed, run.duration)
            for rfile in resource_set.files:
                rfile.received = (
                    rfile.size if percent >= 100.0 else int(rfile.size * percent / 100.0)
                )
        if elapsed >= run.duration:
            self._finish(run)

    def _finish(self, run: ImportRun) -> None:
        for resource, resource_set in run.syncing:
            resource_set.sync = None
            for rfile in resource_set.files:
                rfile.received = rfile.size
            if resource.id not in self.resources:
                continue
            # Once the new set is in, older sets of the resource are removed.
            for old in [s for s in resource.sets if s.id < resource_set.id]:
                self._drop_set_files(old)
            resource.sets = [s for s in resource.sets if s.id >= resource_set.id]
        for resource in list(self.resources.values()):
            if (
                resource.rtype == SYNCED
                and (resource.name, resource.architecture) not in run.targets
            ):
                self.delete_resource(resource)
        self.run = None

    def is_importing(self) -> bool:
        self.advance()
        return self.run is not None and not self.run.stopped

    def start_import(self, duration: float) -> None:
        self.advance()
        if self.run is not None:
            # TERMINATE_IF_RUNNING: a new import replaces a running one (maas-api.md §5.7).
            self.run.stopped = True
        targets = self._targets()
        syncing: list[tuple[BootResource, BootResourceSet]] = []
        for (name, architecture), product in targets.items():
            resource = self.find_resource(SYNCED, name, architecture)
            if resource is None:
                resource = self._new_resource(SYNCED, name, architecture, product)
            newest = resource.sets[-1] if resource.sets else None
            speed = self.rng.uniform(0.5, 1.0)
            if newest is not None and newest.sync is not None:
                total = newest.total_size
                base = 100.0 * newest.received / total if total else 0.0
                newest.sync = SyncProgress(base, speed)
                syncing.append((resource, newest))
                continue
            resource_set = self._new_set(
                resource,
                self.next_version_name(resource),
                product.label,
                self._synced_files(product),
            )
            resource_set.sync = SyncProgress(0.0, speed)
            syncing.append((resource, resource_set))
        self.run = ImportRun(self.clock(), duration, set(targets), syncing)
        self.advance()

    def stop_import(self) -> None:
        self.advance()
        if self.run is not None:
            self.run.stopped = True

    # -- boot resources ----------------------------------------------------------------------

    def find_resource(self, rtype: int, name: str, architecture: str) -> BootResource | None:
        for resource in self.resources.values():
            if (resource.rtype, resource.name, resource.architecture) == (
                rtype,
                name,
                architecture,
            ):
                return resource
        return None

    def next_version_name(self, resource: BootResource) -> str:
        """BootResource.get_next_version_name: YYYYMMDD, then YYYYMMDD.N the same day."""
        today = self.wallclock().strftime("%Y%m%d")
        same_day = [s.version for s in resource.sets if s.version.startswith(today)]
        if not same_day:
            return today
        highest = 0
        for version in same_day:
            if "." in version:
                suffix = version.split(".", 1)[1]
                if suffix.isdigit():
                    highest = max(highest, int(suffix))
        return f"{today}.{highest + 1}"

    def file_size_conflict(self, sha256: str, size: int) -> bool:
        return any(f.sha256 == sha256 and f.size != size for f in self.files.values())

    def content_stored(self, sha256: str, size: int) -> bool:
        return any(
            f.sha256 == sha256 and f.size == size and f.complete for f in self.files.values()
        )

    def create_uploaded(
        self,
        *,
        name: str,
        architecture: str,
        title: str,
        base_image: str,
        filetype: str,
        sha256: str,
        size: int,
        keep_old: bool,
        complete: bool,
    ) -> BootResource:
        """BootResourceForm.save: get-or-create the resource, then add a new one-file set."""
        resource = self.find_resource(UPLOADED, name, architecture)
        if resource is None:
            resource = self._new_resource(UPLOADED, name, architecture, None)
        resource.extra = {"subarches": architecture.split("/")[1], "title": title}
        if not resource.base_image:
            resource.base_image = base_image
        stored = UPLOAD_FILETYPES[filetype]
        rfile = self._new_file(self.uploaded_filename(stored), stored, sha256, size)
        if complete or size <= 0:
            rfile.received = max(size, 0)
        else:
            rfile.hasher = hashlib.sha256()
        resource_set = self._new_set(
            resource, self.next_version_name(resource), "uploaded", [rfile]
        )
        if not keep_old:
            # LP:1660418: the files of older sets go; the sets themselves stay, now empty.
            for old in resource.sets:
                if old is not resource_set:
                    self._drop_set_files(old)
        return resource

    def _drop_set_files(self, resource_set: BootResourceSet) -> None:
        for rfile in resource_set.files:
            self.files.pop(rfile.id, None)
        resource_set.files = []

    def delete_resource(self, resource: BootResource) -> None:
        for resource_set in resource.sets:
            self._drop_set_files(resource_set)
        self.resources.pop(resource.id, None)

    # -- boot sources ------------------------------------------------------------------------

    def create_source(
        self,
        *,
        url: str,
        keyring_filename: str,
        keyring_data: bytes,
        name: str | None = None,
        priority: int | None = None,
        enabled: bool = True,
        skip_keyring_verification: bool = False,
    ) -> BootSource:
        now = self.wallclock()
        if priority is None:
            priority = max((s.priority for s in self.sources.values()), default=0) + 1
        source = BootSource(
            self._next_id("source"),
            url,
            keyring_filename,
            keyring_data,
            now,
            now,
            name if name is not None else url,
            priority,
            enabled,
            skip_keyring_verification,
        )
        self.sources[source.id] = source
        return source

    def touch(self, source: BootSource) -> None:
        source.updated = self.wallclock()

    def delete_source(self, source: BootSource) -> None:
        for selection in self.selections_of(source.id):
            del self.selections[selection.id]
        del self.sources[source.id]
