"""Who may do what (maas-api.md §4.4): admin-only writes, admin-only sources and selections."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .helpers import Maas

ADMIN_ONLY = "This method is reserved for admin users."
NOT_ALLOWED = "User is not allowed access to this API."


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "boot-resources/", None),
        ("GET", "boot-resources/1/", None),
        ("GET", "boot-resources/", {"op": "is_importing"}),
    ],
)
def test_non_admin_may_read_boot_resources(
    user: Maas, method: str, path: str, params: dict[str, str] | None
) -> None:
    assert user.request(method, path, params=params).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("POST", "boot-resources/", None),
        ("POST", "boot-resources/", {"op": "import"}),
        ("POST", "boot-resources/", {"op": "stop_import"}),
        ("DELETE", "boot-resources/1/", None),
        ("PUT", "boot-resources/17/upload/40/", None),
    ],
)
def test_non_admin_writes_to_boot_resources_are_forbidden(
    user: Maas, method: str, path: str, params: dict[str, str] | None
) -> None:
    response = user.request(method, path, params=params)

    assert (response.status_code, response.text) == (403, ADMIN_ONLY)
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "boot-sources/"),
        ("GET", "boot-sources/1/"),
        ("POST", "boot-sources/"),
        ("PUT", "boot-sources/1/"),
        ("DELETE", "boot-sources/1/"),
        ("GET", "boot-sources/1/selections/"),
        ("GET", "boot-sources/1/selections/1/"),
        ("POST", "boot-sources/1/selections/"),
        ("DELETE", "boot-sources/1/selections/2/"),
    ],
)
def test_sources_and_selections_are_admin_only_including_get(
    user: Maas, method: str, path: str
) -> None:
    response = user.request(method, path)

    assert (response.status_code, response.text) == (403, NOT_ALLOWED)


def test_permission_check_comes_before_validation(user: Maas) -> None:
    response = user.post("boot-resources/", fields=[("name", "")])

    assert response.status_code == 403


def test_admin_restricted_resource_refuses_before_method_check(user: Maas) -> None:
    # AdminRestrictedResource.authenticate raises before piston looks at the method.
    assert user.request("PATCH", "boot-sources/").status_code == 403


def test_unknown_op_is_unrecognised_even_for_non_admin(user: Maas) -> None:
    response = user.post("boot-resources/", params={"op": "frobnicate"})

    assert (response.status_code, response.text) == (
        400,
        "Unrecognised signature: method=POST op=frobnicate",
    )


def test_permission_texts_name_entitlements_when_3_8(
    maas_for: Callable[..., tuple[Maas, Maas]],
) -> None:
    _, user = maas_for(maas_version="3.8")

    create = user.post("boot-resources/")
    sources = user.get("boot-sources/")

    assert (create.status_code, create.text) == (
        403,
        "User does not have permission to perform this operation. "
        "The user should have permission 'can_edit_boot_entities'",
    )
    assert (sources.status_code, sources.text) == (
        403,
        "User does not have permission to perform this operation. "
        "The user should have permission 'can_view_boot_entities'",
    )


def test_method_is_checked_before_entitlements_when_3_8(
    maas_for: Callable[..., tuple[Maas, Maas]],
) -> None:
    _, user = maas_for(maas_version="3.8")

    assert user.request("PATCH", "boot-sources/").status_code == 405
