"""What a caller may do (read, write, admin), and how settings and token files spell it."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Permission(enum.StrEnum):
    """What a caller may do: `read` queries, `write` changes MAAS, `admin` implies both and
    may introspect the schema when introspection is switched off for everyone else."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


ALL_PERMISSIONS = frozenset(Permission)


def parse_permissions(text: str) -> frozenset[Permission]:
    """Scopes from `read,write`; `admin` grants all of them. Raises ValueError on an unknown one."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - {s.value for s in Permission})
    if unknown:
        raise ValueError(f"unknown scope {', '.join(unknown)}: use read, write and admin")
    scopes = frozenset(Permission(n) for n in names)
    return ALL_PERMISSIONS if Permission.ADMIN in scopes else scopes


def format_permissions(scopes: Iterable[Permission]) -> str:
    order = list(Permission)
    return ",".join(s.value for s in sorted(set(scopes), key=order.index))
