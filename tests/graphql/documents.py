"""Hostile GraphQL documents the limit tests and the hostile-input tests share."""

from __future__ import annotations


def fragment_fan_out(levels: int, leaf: str = "__typename") -> str:
    """`levels` fragments, each spreading the next one twice: 2**levels copies of `leaf` once
    expanded, in a document of a few hundred bytes."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"{{ ...F0 }} {fragments} fragment F{levels} on Query {{ {leaf} }}"
