"""GraphQL object, input and payload types; objects resolve straight from the service's models."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, NewType, TypeVar

import strawberry
from strawberry.file_uploads import Upload, UploadDefinition
from strawberry.types import Info
from strawberry.types.scalar import ScalarDefinition

from app.core import models
from app.core.errors import GatewayError, ValidationFailed
from app.graphql.context import GraphQLContext


def _parse_long(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("Long must be an integer")
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise ValueError("Long must fit in 64 bits")
    return number


T = TypeVar("T")

# GraphQL's Int is 32-bit; image and set sizes pass 2 GiB (docs/architecture.md, "Types").
Long = NewType("Long", int)

SCALARS: dict[object, ScalarDefinition] = {
    Upload: UploadDefinition,
    Long: strawberry.scalar(
        name="Long",
        description="A 64-bit signed integer (byte sizes).",
        serialize=int,
        parse_value=_parse_long,
    ),
}

# Registered on the service's own enum, so resolvers return its members unchanged.
strawberry.enum(models.BootResourceType, description="How a boot resource came to MAAS.")
strawberry.enum(models.EnsureOutcome, description="What ensuring a declared object did.")


@strawberry.type(description="An architecture as MAAS writes it: arch/subarch.")
class Architecture:
    arch: str
    subarch: str


@strawberry.type(description="One file of a boot resource set.")
class BootResourceFile:
    id: strawberry.ID = strawberry.field(
        description="Stable: <resource id>/<set version>/<filename>."
    )
    filename: str
    filetype: str
    size: Long
    sha256: str
    complete: bool
    progress: float = strawberry.field(description="Percentage 0-100 synced to MAAS.")


@strawberry.type(description="One version of a boot resource, with its files.")
class BootResourceSet:
    id: strawberry.ID = strawberry.field(description="Stable: <resource id>/<version>.")
    version: str
    label: str
    size: Long = strawberry.field(description="Total declared bytes of the set's files.")
    complete: bool
    progress: float
    files: list[BootResourceFile]


def _detail(
    root: models.BootResource, info: Info[GraphQLContext, None]
) -> models.BootResource | None:
    """The resource with its sets when at hand now (already read, or fresh in the cache)."""
    if root.sets is not None:
        return root
    ctx = info.context
    return ctx.service.cached_boot_resource(ctx.caller, root.id)


def _sets(detail: models.BootResource) -> list[models.BootResourceSet]:
    return detail.sets or []


def _latest_set(detail: models.BootResource) -> models.BootResourceSet | None:
    return detail.latest_set


def _complete(detail: models.BootResource) -> bool:
    return bool(detail.complete)


def _from_detail(
    root: models.BootResource, info: Info[GraphQLContext, None], pick: Callable[[Any], T]
) -> T | Awaitable[T]:
    # Synchronous when the detail is at hand: an awaitable per resource costs a task each
    # (docs/architecture.md, "Performance model"); otherwise the request's loader batches the reads.
    detail = _detail(root, info)
    if detail is not None:
        return pick(detail)

    async def load() -> T:
        return pick(await info.context.loaders.boot_resource.load(root.id))

    return load()


def resolve_sets(
    root: strawberry.Parent[models.BootResource], info: Info[GraphQLContext, None]
) -> list[models.BootResourceSet] | Awaitable[list[models.BootResourceSet]]:
    return _from_detail(root, info, _sets)


def resolve_latest_set(
    root: strawberry.Parent[models.BootResource], info: Info[GraphQLContext, None]
) -> models.BootResourceSet | Awaitable[models.BootResourceSet | None] | None:
    return _from_detail(root, info, _latest_set)


def resolve_complete(
    root: strawberry.Parent[models.BootResource], info: Info[GraphQLContext, None]
) -> bool | Awaitable[bool]:
    return _from_detail(root, info, _complete)


async def resolve_selections(
    root: strawberry.Parent[models.BootSource], info: Info[GraphQLContext, None]
) -> list[models.BootSourceSelection]:
    return await info.context.loaders.selections.load(root.id)


async def resolve_selection_source(
    root: strawberry.Parent[models.BootSourceSelection], info: Info[GraphQLContext, None]
) -> models.BootSource:
    return await info.context.loaders.boot_source.load(root.boot_source_id)


@strawberry.type(description="A boot image MAAS can deploy: synced, uploaded or generated.")
class BootResource:
    id: strawberry.ID
    name: str
    os: str | None = strawberry.field(description="The OS part of an os/release name.")
    release: str | None = strawberry.field(description="The release part of an os/release name.")
    architecture: Architecture
    title: str
    type: models.BootResourceType
    subarches: list[str]
    last_deployed: datetime | None
    base_image: str | None
    # Resolved from the service's models, synchronously when cached: graphql_type is the schema.
    sets: Any = strawberry.field(
        resolver=resolve_sets,
        graphql_type=list[BootResourceSet],
        description="Versions of this resource, newest first.",
    )
    latest_set: Any = strawberry.field(
        resolver=resolve_latest_set,
        graphql_type=BootResourceSet | None,
        description="The newest set, if any.",
    )
    complete: Any = strawberry.field(
        resolver=resolve_complete,
        graphql_type=bool,
        description="Whether the newest set is complete.",
    )


@strawberry.type(description="Where MAAS imports synced images from.")
class BootSource:
    id: strawberry.ID
    url: str
    keyring_filename: str
    keyring_data: str = strawberry.field(description="The keyring, base64-encoded.")
    created: datetime | None
    updated: datetime | None
    name: str | None = strawberry.field(description="MAAS 3.8 and later; null before.")
    priority: int | None = strawberry.field(
        description="Higher imports first. MAAS 3.8 and later; null before."
    )
    enabled: bool | None = strawberry.field(description="MAAS 3.8 and later; null before.")
    skip_keyring_verification: bool | None = strawberry.field(
        description="MAAS 3.8 and later; null before."
    )
    selections: list[models.BootSourceSelection] = strawberry.field(
        resolver=resolve_selections,
        graphql_type=list[Annotated["BootSourceSelection", strawberry.lazy("app.graphql.types")]],
        description="What this source imports.",
    )


@strawberry.type(description="Which images of a boot source MAAS imports.")
class BootSourceSelection:
    id: strawberry.ID
    os: str
    release: str
    arches: list[str]
    subarches: list[str]
    labels: list[str]
    boot_source: models.BootSource = strawberry.field(
        resolver=resolve_selection_source,
        graphql_type=BootSource,
        description="The source this selection belongs to.",
    )


@strawberry.type(description="Whether MAAS is importing, and what is still incomplete.")
class ImportStatus:
    importing: bool
    incomplete: list[BootResource]


@strawberry.type(description="Import state pushed to subscribers when it changes.")
class ImportProgress:
    importing: bool
    resources: list[ResourceProgress]


@strawberry.type(description="Progress of one boot resource's newest set.")
class ResourceProgress:
    id: strawberry.ID
    name: str
    architecture: str
    version: str | None
    complete: bool
    progress: float


@strawberry.input(description="Narrow the boot-resource list; every given field must match.")
class BootResourceFilter:
    type: models.BootResourceType | None = None
    os: str | None = None
    release: str | None = None
    architecture: str | None = strawberry.field(
        default=None, description="arch (amd64) or arch/subarch (amd64/generic)."
    )
    name: str | None = None

    def to_model(self) -> models.BootResourceFilter:
        return models.BootResourceFilter(
            type=self.type,
            os=self.os,
            release=self.release,
            architecture=self.architecture,
            name=self.name,
        )


@strawberry.input(description="Which synced images to wait for; every given field must match.")
class ImageFilter:
    os: str | None = None
    release: str | None = None
    arches: list[str] | None = strawberry.field(default=None, description="e.g. [amd64, arm64]")

    def to_model(self) -> models.ImageSelector:
        arches = frozenset(self.arches) if self.arches is not None else None
        return models.ImageSelector(os=self.os, release=self.release, arches=arches)


@strawberry.input(description="A selection a declared source must have.")
class DesiredSelectionInput:
    os: str
    release: str
    arches: list[str] = strawberry.field(default_factory=lambda: ["*"])
    subarches: list[str] = strawberry.field(default_factory=lambda: ["*"])
    labels: list[str] = strawberry.field(default_factory=lambda: ["*"])


@strawberry.input(description="A boot source as declared, with its selections.")
class DesiredSourceInput:
    url: str
    keyring_filename: str | None = None
    keyring_data: str | None = strawberry.field(default=None, description="Base64-encoded.")
    selections: list[DesiredSelectionInput] = strawberry.field(default_factory=list)


@strawberry.input(description="The boot sources and selections MAAS should have.")
class ImagesInput:
    boot_sources: list[DesiredSourceInput]

    def document(self) -> dict[str, Any]:
        """The same document `maas-gateway images apply` reads, for the service to check."""
        return {
            "boot-sources": [
                {
                    "url": s.url,
                    "keyring-filename": s.keyring_filename,
                    "keyring-data": s.keyring_data,
                    "selections": [vars(x) for x in s.selections],
                }
                for s in self.boot_sources
            ]
        }


@strawberry.type(description="One change of a plan.")
class PlanStep:
    action: str = strawberry.field(description="create, update or delete.")
    url: str
    selection: str | None = strawberry.field(description="os/release; null for the source.")
    description: str
    changes: strawberry.scalars.JSON


@strawberry.type
class ApplyImagesPayload:
    plan: list[PlanStep]
    applied: bool = strawberry.field(description="false for a dry run, or when nothing changes.")
    import_started: bool
    errors: list[UserError]


@strawberry.type(description="The images a filter matches, and whether all are complete.")
class Readiness:
    ready: bool = strawberry.field(
        description="Every matching image's newest set is complete (none matching: false)."
    )
    importing: bool
    resources: list[ResourceProgress]


@strawberry.type(description="A problem with one input field (field is null for the whole input).")
class UserError:
    code: str
    field: str | None
    message: str


def user_errors(error: GatewayError) -> list[UserError]:
    """Expected mutation failures as typed data: MAAS's field messages, one per message."""
    if isinstance(error, ValidationFailed) and error.fields:
        return [
            UserError(
                code=error.code,
                field=None if name == "__all__" else _camel(name),
                message=message,
            )
            for name, messages in error.fields.items()
            for message in messages
        ]
    return [UserError(code=error.code, field=None, message=error.message)]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def decode_keyring(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            "keyringData is not valid base64", fields={"keyring_data": ["must be base64"]}
        ) from None
    if not data:
        raise ValidationFailed(
            "keyringData is empty", fields={"keyring_data": ["must not be empty"]}
        )
    return data


@strawberry.input(description="MAAS 3.8's own boot-source fields; earlier versions refuse them.")
class BootSourceOptionsInput:
    name: str | None = strawberry.field(default=None, description="MAAS 3.8 and later.")
    priority: int | None = strawberry.field(
        default=None, description="Higher imports first. MAAS 3.8 and later."
    )
    enabled: bool | None = strawberry.field(default=None, description="MAAS 3.8 and later.")
    skip_keyring_verification: bool | None = strawberry.field(
        default=None, description="MAAS 3.8 and later."
    )

    def options(self) -> models.SourceOptions:
        return models.SourceOptions(
            self.name, self.priority, self.enabled, self.skip_keyring_verification
        )


@strawberry.input(description="A new boot source: give keyringFilename or keyringData, not both.")
class CreateBootSourceInput(BootSourceOptionsInput):
    url: str
    keyring_filename: str | None = strawberry.field(
        default=None, description="Path of a keyring on the MAAS server."
    )
    keyring_data: str | None = strawberry.field(
        default=None, description="The keyring bytes, base64-encoded."
    )


@strawberry.input(description="Changes to a boot source; absent fields keep their values.")
class UpdateBootSourceInput(BootSourceOptionsInput):
    url: str | None = None
    keyring_filename: str | None = None
    keyring_data: str | None = strawberry.field(default=None, description="base64 keyring.")


@strawberry.input(description="A new selection: os and release, with arches, subarches, labels.")
class CreateBootSourceSelectionInput:
    os: str
    release: str
    arches: list[str] | None = strawberry.field(
        default=None, description='Left out: ["*"] (all), sent to MAAS explicitly.'
    )
    subarches: list[str] | None = strawberry.field(
        default=None, description='Left out: ["*"] (all), sent to MAAS explicitly.'
    )
    labels: list[str] | None = strawberry.field(
        default=None, description='Left out: ["*"] (all), sent to MAAS explicitly.'
    )


@strawberry.input(
    description='The selection a source must have for an os and release; lists left out: ["*"].'
)
class EnsureBootSourceSelectionInput(CreateBootSourceSelectionInput):
    pass


@strawberry.input(description="Changes to a selection; absent fields keep their values.")
class UpdateBootSourceSelectionInput:
    os: str | None = None
    release: str | None = None
    arches: list[str] | None = None
    subarches: list[str] | None = None
    labels: list[str] | None = None


@strawberry.type
class EnsureBootSourceSelectionPayload:
    boot_source_selection: BootSourceSelection | None
    outcome: models.EnsureOutcome | None = strawberry.field(
        description="CREATED, UPDATED, or UNCHANGED (MAAS was not written to); null on errors."
    )
    errors: list[UserError]


@strawberry.type
class BootSourcePayload:
    boot_source: BootSource | None
    errors: list[UserError]


@strawberry.type
class BootSourceSelectionPayload:
    boot_source_selection: BootSourceSelection | None
    errors: list[UserError]


@strawberry.type
class DeletePayload:
    deleted_id: strawberry.ID | None
    errors: list[UserError]


@strawberry.type
class ImportPayload:
    importing: bool
    errors: list[UserError]


@strawberry.type
class BootResourcePayload:
    boot_resource: BootResource | None
    errors: list[UserError]


@strawberry.input(description="A custom image to upload; the file goes as a multipart `Upload`.")
class UploadBootResourceInput:
    name: str
    architecture: str = strawberry.field(description="arch/subarch, e.g. amd64/generic.")
    title: str | None = None
    filetype: str = strawberry.field(default="tgz", description="MAAS upload type (tgz, ddraw...).")
    base_image: str | None = strawberry.field(default=None, description="os/series it is based on.")
    sha256: str | None = strawberry.field(
        default=None, description="When given, the file must hash to it."
    )
