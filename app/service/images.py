"""Desired images: the document that declares boot sources and selections, the plan that brings
MAAS to it, and applying that plan through the service's own writes (docs/architecture.md,
"Desired images")."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from app.core.errors import ValidationFailed
from app.core.models import BootSourceSelection
from app.service.payloads import to_boot_source, to_selection

if TYPE_CHECKING:
    from app.service.boot import BootService, Caller

Action = Literal["create", "update", "delete"]
EVERY = ("*",)


@dataclass(frozen=True, slots=True)
class DesiredSelection:
    os: str
    release: str
    arches: tuple[str, ...] = EVERY
    subarches: tuple[str, ...] = EVERY
    labels: tuple[str, ...] = EVERY

    def lists(self) -> dict[str, list[str]]:
        return {
            "arches": list(self.arches),
            "subarches": list(self.subarches),
            "labels": list(self.labels),
        }


@dataclass(frozen=True, slots=True)
class DesiredSource:
    url: str
    keyring_filename: str | None = None
    keyring_data: bytes | None = None
    selections: tuple[DesiredSelection, ...] = ()


NAME: Any = Field(min_length=1, max_length=20)


class _Spec(BaseModel):
    # The file's own spelling (keyring-filename), and no key it does not know.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SelectionSpec(_Spec):
    os: str = NAME
    release: str = NAME
    arches: list[str] = Field(default=["*"], min_length=1)
    subarches: list[str] = Field(default=["*"], min_length=1)
    labels: list[str] = Field(default=["*"], min_length=1)


class SourceSpec(_Spec):
    url: str = Field(min_length=1, examples=["http://images.maas.io/ephemeral-v3/stable/"])
    keyring_filename: str | None = Field(default=None, alias="keyring-filename")
    keyring_data: str | None = Field(
        default=None, alias="keyring-data", description="The keyring, base64-encoded."
    )
    selections: list[SelectionSpec] = []

    @field_validator("keyring_data")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            base64.b64decode(value, validate=True)  # binascii.Error is a ValueError
        return value

    @model_validator(mode="after")
    def _distinct(self) -> SourceSpec:
        keys = [(s.os, s.release) for s in self.selections]
        twice = sorted({f"{os}/{release}" for os, release in keys if keys.count((os, release)) > 1})
        if twice:
            raise ValueError(f"selections declared twice: {', '.join(twice)}")
        return self


class ImagesSpec(_Spec):
    boot_sources: list[SourceSpec] = Field(alias="boot-sources")

    @model_validator(mode="after")
    def _distinct(self) -> ImagesSpec:
        urls = [s.url for s in self.boot_sources]
        twice = sorted({u for u in urls if urls.count(u) > 1})
        if twice:
            raise ValueError(f"boot sources declared twice: {', '.join(twice)}")
        return self

    def desired(self) -> list[DesiredSource]:
        return [
            DesiredSource(
                url=s.url,
                keyring_filename=s.keyring_filename,
                keyring_data=base64.b64decode(s.keyring_data) if s.keyring_data else None,
                selections=tuple(
                    DesiredSelection(
                        x.os, x.release, tuple(x.arches), tuple(x.subarches), tuple(x.labels)
                    )
                    for x in s.selections
                ),
            )
            for s in self.boot_sources
        ]


def images_document(document: object) -> list[DesiredSource]:
    """The desired state a document declares; ValidationFailed names each bad field by its
    path (boot-sources.0.selections.1.release)."""
    try:
        return ImagesSpec.model_validate(document).desired()
    except ValidationError as error:
        fields: dict[str, list[str]] = {}
        for problem in error.errors():
            path = ".".join(str(part) for part in problem["loc"]) or "document"
            fields.setdefault(path, []).append(problem["msg"])
        first = next(iter(fields))
        raise ValidationFailed(f"{first}: {fields[first][0]}", fields=fields) from None


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One change: `selection` is "os/release" for selection steps, None for the source's own."""

    action: Action
    url: str
    selection: str | None = None
    changes: dict[str, object] = field(default_factory=dict)
    source_id: int | None = None
    """MAAS's id of the source, known when it exists already (the plan read it)."""
    selection_id: int | None = None
    """MAAS's id of the selection a delete removes."""

    def describe(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        what = f"selection {self.selection} of {self.url}" if self.selection else self.url
        changed = ", ".join(f"{k}={v}" for k, v in self.changes.items())
        return f"{sign} {self.action} {what}" + (f" ({changed})" if changed else "")


@dataclass(frozen=True, slots=True)
class ImagesResult:
    plan: list[PlanStep]
    applied: bool
    import_started: bool


async def plan_images(
    service: BootService, caller: Caller, desired: Sequence[DesiredSource], *, prune: bool
) -> list[PlanStep]:
    """What applying `desired` would change, read from MAAS itself (not the cache)."""
    current = {s.url: s for s in map(to_boot_source, await caller.maas.list_boot_sources())}
    steps: list[PlanStep] = []
    for wanted in desired:
        source = current.get(wanted.url)
        if source is None:
            steps.append(PlanStep("create", wanted.url, changes=_keyring(wanted)))
            steps.extend(_selection_steps(wanted, [], None))
            continue
        changes = {k: v for k, v in _keyring(wanted).items() if getattr(source, k) != v}
        if changes:
            steps.append(PlanStep("update", wanted.url, changes=changes, source_id=source.id))
        selections = [
            to_selection(s) for s in await caller.maas.list_boot_source_selections(source.id)
        ]
        steps.extend(_selection_steps(wanted, selections, source.id, prune=prune))
    if prune:
        declared = {w.url for w in desired}
        steps.extend(
            PlanStep("delete", url, source_id=source.id)
            for url, source in current.items()
            if url not in declared
        )
    return steps


async def apply_images(
    service: BootService,
    caller: Caller,
    desired: Sequence[DesiredSource],
    *,
    prune: bool,
    dry_run: bool,
) -> ImagesResult:
    """Plan, then (unless `dry_run`, or nothing would change) carry the plan out in order and
    start the import. A second apply of the same file plans nothing."""
    steps = await plan_images(service, caller, desired, prune=prune)
    if dry_run or not steps:
        return ImagesResult(steps, applied=False, import_started=False)
    by_url = {w.url: w for w in desired}
    created: dict[str, int] = {}  # sources this apply makes, for their selections' steps
    for step in steps:
        wanted = by_url.get(step.url)
        source_id = step.source_id if step.source_id is not None else created.get(step.url)
        if step.selection is None:
            created[step.url] = await _apply_source(service, caller, step, wanted, source_id)
        else:
            assert source_id is not None  # its source exists, or an earlier step made it
            await _apply_selection(service, caller, step, wanted, source_id)
    started = await service.start_import(caller)
    return ImagesResult(steps, applied=True, import_started=started)


async def _apply_source(
    service: BootService,
    caller: Caller,
    step: PlanStep,
    wanted: DesiredSource | None,
    source_id: int | None,
) -> int:
    if step.action == "delete" and source_id is not None:
        await service.delete_boot_source(caller, source_id)
        return source_id
    assert wanted is not None
    filename, data = wanted.keyring_filename, wanted.keyring_data
    if step.action == "create":
        created = await service.create_boot_source(
            caller, url=wanted.url, keyring_filename=filename, keyring_data=data
        )
        return created.id
    assert source_id is not None
    await service.update_boot_source(
        caller, source_id, keyring_filename=filename, keyring_data=data
    )
    return source_id


async def _apply_selection(
    service: BootService,
    caller: Caller,
    step: PlanStep,
    wanted: DesiredSource | None,
    source_id: int,
) -> None:
    assert step.selection is not None
    os_name, _, release = step.selection.partition("/")
    if step.action == "delete":
        assert step.selection_id is not None  # the plan read it
        await service.delete_selection(caller, source_id, step.selection_id)
        return
    assert wanted is not None
    declared = next(s for s in wanted.selections if (s.os, s.release) == (os_name, release))
    await service.ensure_selection(
        caller, source_id, os=os_name, release=release, **declared.lists()
    )


def _selection_steps(
    wanted: DesiredSource,
    current: Sequence[BootSourceSelection],
    source_id: int | None,
    *,
    prune: bool = False,
) -> list[PlanStep]:
    by_key = {(s.os, s.release): s for s in current}
    steps = []
    for declared in wanted.selections:
        name = f"{declared.os}/{declared.release}"
        have = by_key.get((declared.os, declared.release))
        lists = declared.lists()
        if have is None:
            steps.append(PlanStep("create", wanted.url, name, dict(lists), source_id))
            continue
        changes = {k: v for k, v in lists.items() if sorted(getattr(have, k)) != sorted(v)}
        if changes:
            steps.append(PlanStep("update", wanted.url, name, dict(changes), source_id))
    if prune:
        declared_keys = {(s.os, s.release) for s in wanted.selections}
        steps.extend(
            PlanStep("delete", wanted.url, f"{s.os}/{s.release}", {}, source_id, s.id)
            for s in current
            if (s.os, s.release) not in declared_keys
        )
    return steps


def _keyring(wanted: DesiredSource) -> dict[str, object]:
    changes: dict[str, object] = {}
    if wanted.keyring_filename is not None:
        changes["keyring_filename"] = wanted.keyring_filename
    if wanted.keyring_data is not None:
        changes["keyring_data"] = base64.b64encode(wanted.keyring_data).decode()
    return changes
