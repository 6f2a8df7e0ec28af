"""Validation with the exact messages of MAAS's Django forms for resources, sources, selections."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from app.simulator.config import MaasVersion
from app.simulator.parsing import FormData, UploadedFile
from app.simulator.responses import FormErrors, ModelValidationError, ServerError
from app.simulator.state import (
    LINUX_OSYSTEMS,
    SUPPORTED_OSYSTEMS,
    UPLOAD_FILETYPES,
    UPLOADED,
    BootSource,
    BootSourceSelection,
    MaasState,
    image_index,
    is_supported_base_release,
)

REQUIRED = "This field is required."
EMPTY_FILE = "The submitted file is empty."
# Django's URLValidator, reduced to what a boot source URL needs.
_URL = re.compile(
    r"^(?:http|ftp)s?://"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*\.?|localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\])"
    r"(?::\d{1,5})?(?:[/?#][^\s]*)?$",
)
_DECIMAL_TAIL = re.compile(r"\.0*\s*$")
POSTGRES_INT_MAX = 2**31 - 1
"""The largest value of a Postgres `integer` column, such as a boot source's priority."""


class _Errors:
    """form.errors in field order, `__all__` last like Django's non-field errors."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, []).append(message)

    def raise_if_any(self) -> None:
        if self.fields:
            ordered = {k: v for k, v in self.fields.items() if k != "__all__"}
            if "__all__" in self.fields:
                ordered["__all__"] = self.fields["__all__"]
            raise FormErrors(ordered)


def _char(
    data: FormData,
    name: str,
    errors: _Errors,
    *,
    required: bool = False,
    min_length: int | None = None,
    max_length: int | None = None,
) -> str | None:
    """forms.CharField: strip, required check, length checks; None when invalid."""
    raw = data.get(name)
    value = (raw or "").strip()
    if not value:
        if required:
            errors.add(name, REQUIRED)
            return None
        return ""
    if max_length is not None and len(value) > max_length:
        errors.add(
            name, f"Ensure this value has at most {max_length} characters (it has {len(value)})."
        )
        return None
    if min_length is not None and len(value) < min_length:
        errors.add(
            name, f"Ensure this value has at least {min_length} characters (it has {len(value)})."
        )
        return None
    return value


def _integer(data: FormData, name: str, errors: _Errors, *, required: bool) -> int | None:
    raw = (data.get(name) or "").strip()
    if not raw:
        if required:
            errors.add(name, REQUIRED)
        return None
    try:
        return int(_DECIMAL_TAIL.sub("", raw))
    except ValueError:
        errors.add(name, "Enter a whole number.")
        return None


def boolean(value: str | None) -> bool:
    """forms.BooleanField.to_python: "false"/"0" (any case) and "" are False."""
    if value is None:
        return False
    return value.strip().lower() not in ("", "false", "0")


def _null_boolean(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "on", "yes"):
        return True
    if lowered in ("false", "0", "off", "no"):
        return False
    return default


# -- boot resources ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BootResourceUpload:
    name: str
    architecture: str
    title: str
    filetype: str
    sha256: str
    size: int
    base_image: str
    keep_old: bool
    content_complete: bool


def _clean_name(raw: str, state: MaasState, version: MaasVersion, errors: _Errors) -> str | None:
    """BootResourceForm.clean_name (maas-api.md §5.4)."""
    name = raw
    if "/" in name:
        pieces = name.split("/")
        if len(pieces) != 2:
            # `osystem, release = name.split("/")` raises outside validation: a 500.
            raise ServerError("too many values to unpack (expected 2)")
        osystem, release = pieces
        if osystem == "custom" and version.strips_custom_prefix:
            name = release
        elif osystem not in SUPPORTED_OSYSTEMS:
            errors.add(
                "name",
                f"Unsupport operating system {osystem}, supported operating systems: "
                f"{list(SUPPORTED_OSYSTEMS)}",
            )
            return None
    if name in state.reserved_names() or re.search(r"^centos\d\d?$", name):
        errors.add("name", f"{name} is a reserved name")
        return None
    return name


def _clean_base_image(
    data: FormData,
    name: str | None,
    architecture: str | None,
    state: MaasState,
    version: MaasVersion,
    errors: _Errors,
) -> str:
    """BootResourceForm.clean_base_image (maas-api.md §5.4)."""
    split_name = (data.get("name") or "").split("/")
    if len(split_name) > 1 and split_name[0] != "custom":
        return ""
    given = (data.get("base_image") or "").strip()
    commissioning = f"ubuntu/{version.commissioning_release}"
    if given:
        base_image = given
    elif name is None or architecture is None:
        # The form already has errors; MAAS falls back to the commissioning OS.
        return commissioning
    else:
        existing = state.find_resource(UPLOADED, name, architecture)
        base_image = existing.base_image if existing is not None else ""
    pieces = base_image.split("/")
    if len(pieces) != 2:
        if not given:
            return commissioning
        errors.add("base_image", "a base image must follow the format: <osystem>/<series>")
        return ""
    base_os, base_release = pieces[0].lower(), pieces[1].lower()
    if base_os not in LINUX_OSYSTEMS:
        errors.add("base_image", "custom images require a valid non-custom OS type base image")
        return ""
    if not is_supported_base_release(base_os, base_release):
        errors.add("base_image", "please select a valid base image OS and version")
        return ""
    return f"{base_os}/{base_release}"


def _clean_architecture(data: FormData, state: MaasState, errors: _Errors) -> str | None:
    raw = data.get("architecture")
    if not raw:
        errors.add("architecture", REQUIRED)
        return None
    usable = state.usable_architectures()
    if raw in usable:
        return raw
    choices = ", ".join(f"'{a}'" for a in usable) if usable else "''"
    errors.add(
        "architecture", f"'{raw}' is not a valid architecture.  It should be one of: {choices}."
    )
    return None


def _clean_filetype(data: FormData, errors: _Errors) -> str | None:
    raw = data.get("filetype") if "filetype" in data else "tgz"
    if not raw:
        errors.add("filetype", REQUIRED)
        return None
    if raw not in UPLOAD_FILETYPES:
        errors.add("filetype", f"Select a valid choice. {raw} is not one of the available choices.")
        return None
    return raw


def _clean_checksum(
    data: FormData, content: UploadedFile | None, errors: _Errors
) -> tuple[str | None, int | None]:
    """(sha256, size): computed from an uploaded `content`, else the declared fields."""
    if content is None:
        sha256 = _char(data, "sha256", errors, required=True, min_length=64, max_length=64)
        return sha256, _integer(data, "size", errors, required=True)
    if not content.data:
        errors.add("content", EMPTY_FILE)
    return hashlib.sha256(content.data).hexdigest(), len(content.data)


def validate_boot_resource(
    data: FormData, state: MaasState, version: MaasVersion
) -> BootResourceUpload:
    """BootResourceForm / BootResourceNoContentForm, field by field, then the file rules."""
    errors = _Errors()
    content = data.file("content") if version.accepts_content_upload else None
    raw_name = _char(data, "name", errors, required=True, max_length=255)
    name = _clean_name(raw_name, state, version, errors) if raw_name else None
    title = _char(data, "title", errors) or ""
    architecture = _clean_architecture(data, state, errors)
    filetype = _clean_filetype(data, errors)
    sha256, size = _clean_checksum(data, content, errors)
    keep_old = boolean(data.get("keep_old"))
    base_image = ""
    if version.has_base_image:
        base_image = _clean_base_image(data, name, architecture, state, version, errors)
    errors.raise_if_any()
    assert name is not None
    assert architecture is not None
    assert filetype is not None
    assert sha256 is not None
    assert size is not None
    return BootResourceUpload(
        name=name,
        architecture=architecture,
        title=title,
        filetype=filetype,
        sha256=sha256,
        size=size,
        base_image=base_image,
        keep_old=keep_old,
        content_complete=content is not None,
    )


# -- boot sources --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BootSourceChanges:
    url: str
    keyring_filename: str
    keyring_data: bytes
    name: str
    priority: int | None
    enabled: bool
    skip_keyring_verification: bool


@dataclass(slots=True)
class _SourceForm:
    """One BootSourceForm being cleaned: its input, the stored source, and the values so far."""

    data: FormData
    state: MaasState
    version: MaasVersion
    instance: BootSource | None
    errors: _Errors = field(default_factory=_Errors)
    url: str | None = None
    keyring_filename: str = ""
    keyring_data: bytes = b""
    name: str = ""
    priority: int | None = None
    enabled: bool = True
    skip: bool = False

    def taken(self, attribute: str, value: str) -> bool:
        """The model's unique check: another source already has this value."""
        return any(
            getattr(s, attribute) == value and s is not self.instance
            for s in self.state.sources.values()
        )

    def changes(self) -> BootSourceChanges:
        assert self.url is not None
        return BootSourceChanges(
            url=self.url,
            keyring_filename=self.keyring_filename,
            keyring_data=self.keyring_data,
            name=self.name or self.url,
            priority=self.priority,
            enabled=self.enabled,
            skip_keyring_verification=self.skip,
        )


def _is_json(url: str | None) -> bool:
    return bool(url and url.endswith(".json"))


def _url_field(data: FormData, errors: _Errors) -> str | None:
    """forms.URLField(max_length=200)."""
    url = _char(data, "url", errors, required=True, max_length=200)
    if url and not _URL.match(url):
        errors.add("url", "Enter a valid URL.")
        return None
    return url


def _clean_url(form: _SourceForm) -> None:
    if form.instance is not None and "url" not in form.data:
        url: str | None = form.instance.url
    else:
        url = _url_field(form.data, form.errors)
    if url and form.version.entitlements:
        # 3.8 strips a trailing slash on save (maas-api.md §6.1).
        url = url.rstrip("/") or url
    if url is not None and form.taken("url", url):
        form.errors.add("url", "Boot source with this Url already exists.")
    form.url = url


def _clean_keyring_filename(form: _SourceForm) -> None:
    if form.instance is not None and "keyring_filename" not in form.data:
        form.keyring_filename = form.instance.keyring_filename
    else:
        form.keyring_filename = _char(form.data, "keyring_filename", form.errors) or ""


def _clean_keyring_data(form: _SourceForm) -> None:
    upload = form.data.file("keyring_data")
    if upload is not None:
        if not upload.data:
            form.errors.add("keyring_data", EMPTY_FILE)
        form.keyring_data = upload.data
    elif form.instance is not None and form.instance.keyring_data:
        # The FileField returns the stored bytes as its initial value and clean_keyring_data
        # calls .read() on them: regiond 500s (maas-api.md §6.3, inferred from the code).
        raise ServerError("'memoryview' object has no attribute 'read'")


def _source_settings(form: _SourceForm) -> None:
    """Start name, priority and the flags from the stored source on 3.8, else from the URL."""
    instance = form.instance
    if form.version.entitlements and instance is not None:
        form.name, form.priority = instance.name, instance.priority
        form.enabled, form.skip = instance.enabled, instance.skip_keyring_verification
    else:
        form.name, form.skip = form.url or "", _is_json(form.url)


def _clean_source_name(form: _SourceForm) -> None:
    if "name" not in form.data:
        return
    name = _char(form.data, "name", form.errors, required=True, max_length=255) or ""
    if name and form.taken("name", name):
        form.errors.add("name", "Boot source with this Name already exists.")
    form.name = name


def _clean_priority(form: _SourceForm) -> None:
    if "priority" not in form.data:
        return
    priority = _integer(form.data, "priority", form.errors, required=True)
    if priority is not None and priority < 0:
        form.errors.add("priority", "Ensure this value is greater than or equal to 0.")
    elif priority is not None and priority > POSTGRES_INT_MAX:
        # Django gives an IntegerField the database column's range as validators.
        form.errors.add(
            "priority", f"Ensure this value is less than or equal to {POSTGRES_INT_MAX}."
        )
    form.priority = priority


def _clean_flags(form: _SourceForm) -> None:
    form.enabled = _null_boolean(form.data.get("enabled"), form.enabled)
    form.skip = _null_boolean(form.data.get("skip_keyring_verification"), form.skip)


def _check_keyrings(form: _SourceForm) -> None:
    """BootSource.clean: exactly one keyring, unless the source is exempt from verification."""
    if _is_json(form.url) or (form.version.entitlements and form.skip):
        return
    if not form.keyring_filename and not form.keyring_data:
        form.errors.add("__all__", "One of keyring_data or keyring_filename must be specified.")
    elif form.keyring_filename and form.keyring_data:
        form.errors.add("__all__", "Only one of keyring_filename or keyring_data can be specified.")


_SourceCleaner = Callable[[_SourceForm], None]
# In the form's field order, which is the order MAAS reports field errors in.
_SOURCE_FIELDS: tuple[_SourceCleaner, ...] = (
    _clean_url,
    _clean_keyring_filename,
    _clean_keyring_data,
    _source_settings,
)
# Only 3.8's form has these fields; before it a source is named by its URL.
_ENTITLED_FIELDS: tuple[_SourceCleaner, ...] = (_clean_source_name, _clean_priority, _clean_flags)


def validate_boot_source(
    data: FormData, state: MaasState, version: MaasVersion, instance: BootSource | None
) -> BootSourceChanges:
    """BootSourceForm plus BootSource.clean; an update fills absent fields from `instance`."""
    form = _SourceForm(data, state, version, instance)
    fields = _SOURCE_FIELDS + _ENTITLED_FIELDS if version.entitlements else _SOURCE_FIELDS
    for clean in (*fields, _check_keyrings):
        clean(form)
    form.errors.raise_if_any()
    return form.changes()


# -- boot source selections ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SelectionChanges:
    os: str
    release: str
    arches: list[str]
    subarches: list[str]
    labels: list[str]


_SELECTION_LISTS: tuple[str, ...] = ("arches", "subarches", "labels")


def _selection_series(
    data: FormData, instance: BootSourceSelection | None, errors: _Errors
) -> tuple[str, str]:
    """(os, release), each from the form or, on an update that omits it, the stored selection."""
    values: dict[str, str | None] = {}
    for name in ("os", "release"):
        if instance is not None and name not in data:
            values[name] = getattr(instance, name)
        else:
            values[name] = _char(data, name, errors, max_length=20)
    os_name, release = values["os"], values["release"]
    if os_name is None or release is None:
        # clean() indexes cleaned_data["os"] even after a field error: a KeyError, so a 500.
        missing = "os" if os_name is None else "release"
        raise ServerError(repr(missing))
    return os_name, release


def _selection_lists(data: FormData, instance: BootSourceSelection | None) -> dict[str, list[str]]:
    return {
        name: list(getattr(instance, name))
        if instance is not None and name not in data
        else data.getlist(name)
        for name in _SELECTION_LISTS
    }


def _check_available(
    source: BootSource, os_name: str, release: str, lists: dict[str, list[str]], errors: _Errors
) -> None:
    """The series must be in the source's index, and each list a subset of what it offers."""
    cache = [
        p
        for p in image_index(source.url)
        if (not os_name or p.os == os_name) and p.release == release
    ]
    if not cache:
        errors.add(
            "os", f"OS {os_name} with release {release} has no available images for download"
        )
        errors.raise_if_any()
    available = {
        "arches": {p.arch for p in cache},
        "subarches": {p.subarch for p in cache},
        "labels": {p.label for p in cache},
    }
    for name in _SELECTION_LISTS:
        wanted = lists[name]
        if "*" not in wanted and not set(wanted) <= available[name]:
            errors.add(name, f"No available images to download for {wanted}")
    errors.raise_if_any()


def _check_unique_selection(
    state: MaasState,
    source: BootSource,
    os_name: str,
    release: str,
    instance: BootSourceSelection | None,
) -> None:
    duplicate = any(
        s.boot_source_id == source.id
        and s.os == os_name
        and s.release == release
        and s is not instance
        for s in state.selections.values()
    )
    if duplicate:
        # CleanSave's full_clean finds the unique_together clash (maas-api.md §11.1 item 9).
        raise ModelValidationError(
            {
                "__all__": [
                    "Boot source selection with this Boot source, Os and Release already exists."
                ]
            }
        )


def validate_selection(
    data: FormData,
    state: MaasState,
    source: BootSource,
    instance: BootSourceSelection | None,
) -> SelectionChanges:
    """BootSourceSelectionForm.clean against the source's image index (maas-api.md §7.2)."""
    errors = _Errors()
    os_name, release = _selection_series(data, instance, errors)
    lists = _selection_lists(data, instance)
    _check_available(source, os_name, release, lists, errors)
    _check_unique_selection(state, source, os_name, release, instance)
    return SelectionChanges(os_name, release, lists["arches"], lists["subarches"], lists["labels"])
