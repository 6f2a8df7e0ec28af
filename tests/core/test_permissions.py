"""Scopes as settings and tokens files spell them: parsed leniently, refused when unknown,
written back in one order."""

from __future__ import annotations

import pytest

from app.core.permissions import ALL_PERMISSIONS, Permission, format_permissions, parse_permissions

READ, WRITE, ADMIN = Permission.READ, Permission.WRITE, Permission.ADMIN


@pytest.mark.parametrize(
    ("text", "scopes"),
    [
        ("read", {READ}),
        (" Read , WRITE ,", {READ, WRITE}),
        ("write,write", {WRITE}),
        ("", set()),
        (" , ", set()),
    ],
)
def test_scopes_are_read_in_any_case_spacing_and_repetition(text: str, scopes: set[str]) -> None:
    assert parse_permissions(text) == frozenset(scopes)


@pytest.mark.parametrize("text", ["admin", "read,admin", "ADMIN"])
def test_admin_grants_every_scope(text: str) -> None:
    assert parse_permissions(text) == ALL_PERMISSIONS == {READ, WRITE, ADMIN}


def test_unknown_scopes_are_refused_all_named_in_order() -> None:
    with pytest.raises(
        ValueError, match=r"^unknown scope all, bogus, zap: use read, write and admin$"
    ):
        parse_permissions("read,zap,Bogus,all")


@pytest.mark.parametrize(
    ("scopes", "text"),
    [
        ([WRITE, READ, WRITE], "read,write"),
        ([ADMIN, READ], "read,admin"),
        ([ADMIN, WRITE, READ], "read,write,admin"),
        ([WRITE], "write"),
        ([], ""),
    ],
)
def test_scopes_are_written_once_each_in_read_write_admin_order(
    scopes: list[Permission], text: str
) -> None:
    assert format_permissions(scopes) == text


def test_what_is_written_reads_back_the_same() -> None:
    for scopes in ({READ}, {WRITE}, {READ, WRITE}, ALL_PERMISSIONS):
        assert parse_permissions(format_permissions(scopes)) == scopes
