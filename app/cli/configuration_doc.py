"""docs/configuration.md, rendered from the Settings class (committed, and checked for drift)."""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from app.core.settings import ENV_PREFIX, Settings

CONFIGURATION_DOC = "configuration.md"

_HEADER = f"""\
<!-- Generated from app/core/settings.py by `maas-gateway export`; edit Settings there. -->
# Configuration

The gateway reads its settings from `{ENV_PREFIX}*` environment variables, or from a `.env` file
in its working directory. Unset variables take the defaults below; a malformed value stops
start-up with one line naming the variable. In Kubernetes the Helm chart sets them from
`config.<camelCase name>` (the MAAS key comes from a Secret).

| Variable | Type | Default | Meaning |
|---|---|---|---|
"""


def render_configuration() -> str:
    """The Markdown page: one row per setting, in the order the Settings class declares them."""
    rows = [
        "| `{}` | {} | {} | {} |".format(
            ENV_PREFIX + name.upper(),
            _type(field),
            _default(name, field),
            _cell(field.description or ""),
        )
        for name, field in Settings.model_fields.items()
    ]
    return _HEADER + "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type(field: FieldInfo) -> str:
    annotation = field.annotation
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
    if get_origin(annotation) is Literal:
        text = "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    else:
        text = {
            bool: "boolean",
            int: "integer",
            float: "number",
            str: "string",
            SecretStr: "secret string",
        }.get(annotation, str(annotation))  # type: ignore[arg-type]
    limits = [_limit(meta) for meta in field.metadata]
    text += "".join(f", {limit}" for limit in limits if limit)
    return f"{text} (optional)" if optional else text


def _limit(meta: Any) -> str | None:
    if isinstance(meta, Gt):
        return f"> {meta.gt}"
    if isinstance(meta, Ge):
        return f"≥ {meta.ge}"
    if isinstance(meta, Lt):
        return f"< {meta.lt}"
    if isinstance(meta, Le):
        return f"≤ {meta.le}"
    return None


def _default(name: str, field: FieldInfo) -> str:
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return "empty"
    text = f"`{value}`"
    if isinstance(value, int) and ("bytes" in name or "size" in name):
        text += _binary_size(value)
    return text


def _binary_size(value: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= scale and value % scale == 0:
            return f" ({value // scale} {unit})"
    return ""
