"""Boot resources: list, filter, read, create (every form rule), delete (maas-api.md §5)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from .helpers import FilePart, Maas

SHA = "a" * 64


def _find(client: Maas, name: str, architecture: str | None = None) -> dict[str, Any]:
    for resource in client.get("boot-resources/").json():
        if resource["name"] == name and architecture in (None, resource["architecture"]):
            return resource  # type: ignore[no-any-return]
    raise AssertionError(f"no resource {name} {architecture}")


def _create(client: Maas, **overrides: str | FilePart) -> Any:
    fields: dict[str, str | FilePart] = {
        "name": "custom-image",
        "architecture": "amd64/generic",
        "title": "A custom image",
        "filetype": "tgz",
        "size": "1024",
        "sha256": SHA,
    }
    fields.update(overrides)
    return client.post(
        "boot-resources/", fields=[(k, v) for k, v in fields.items() if v != "<absent>"]
    )


# -- list ----------------------------------------------------------------------------------


def test_list_has_no_sets_and_orders_by_type_name_architecture(admin: Maas) -> None:
    resources = admin.get("boot-resources/").json()

    assert all("sets" not in r for r in resources)
    types = [r["type"] for r in resources]
    assert types.index("Uploaded") > max(i for i, t in enumerate(types) if t == "Synced")
    synced = [(r["name"], r["architecture"]) for r in resources if r["type"] == "Synced"]
    assert synced == sorted(synced)
    assert {"ubuntu/jammy", "ubuntu/noble", "grub-efi-signed/uefi", "pxelinux/pxe"} <= {
        name for name, _ in synced
    }


def test_list_item_carries_extra_keys_at_top_level(admin: Maas) -> None:
    resource = _find(admin, "ubuntu/jammy", "amd64/ga-22.04")

    assert resource["type"] == "Synced"
    assert resource["resource_uri"] == f"/MAAS/api/2.0/boot-resources/{resource['id']}/"
    assert isinstance(resource["subarches"], str)
    assert "ga-22.04" in resource["subarches"].split(",")
    assert resource["title"] == "Ubuntu 22.04 LTS"
    assert "last_deployed" in resource


@pytest.mark.parametrize(("token", "label"), [("synced", "Synced"), ("uploaded", "Uploaded")])
def test_list_filters_by_type_and_orders_by_name(admin: Maas, token: str, label: str) -> None:
    resources = admin.get("boot-resources/", params={"type": token}).json()

    assert resources
    assert {r["type"] for r in resources} == {label}
    keys = [(r["name"], r["architecture"]) for r in resources]
    assert keys == sorted(keys)


def test_list_type_all_equals_no_filter(admin: Maas) -> None:
    assert admin.get("boot-resources/", params={"type": "all"}).json() == (
        admin.get("boot-resources/").json()
    )


@pytest.mark.parametrize("token", ["generated", "bogus", ""])
def test_list_rejects_unknown_type(admin: Maas, token: str) -> None:
    response = admin.get("boot-resources/", params={"type": token})

    assert response.status_code == 400
    assert response.text == (
        f"'{token}' is not a valid boot resource type. Available types: ['synced', 'uploaded']"
    )


# -- read ----------------------------------------------------------------------------------


def test_read_has_sets_newest_first_with_files(admin: Maas) -> None:
    alma = _find(admin, "alma9")

    body = admin.get(f"boot-resources/{alma['id']}/").json()

    versions = list(body["sets"])
    assert versions == sorted(versions, reverse=True)
    assert len(versions) == 2
    newest = body["sets"][versions[0]]
    assert newest["label"] == "uploaded"
    assert newest["complete"] is True
    assert "progress" not in newest
    (rfile,) = newest["files"].values()
    assert rfile["filename"] == "root.tgz"
    assert rfile["filetype"] == "root-tgz"
    assert len(rfile["sha256"]) == 64
    assert rfile["filename_on_disk"] == rfile["sha256"][:7]
    assert rfile["size"] == newest["size"] > 100 * 2**20
    assert "upload_uri" not in rfile
    assert body["base_image"] == "rhel/9"
    assert body["subarches"] == "generic"
    assert body["title"] == "AlmaLinux 9"


def test_read_synced_resource_has_squashfs_kernel_initrd(admin: Maas) -> None:
    jammy = _find(admin, "ubuntu/jammy", "amd64/ga-22.04")

    body = admin.get(f"boot-resources/{jammy['id']}/").json()

    (resource_set,) = body["sets"].values()
    assert set(resource_set["files"]) == {"squashfs", "boot-kernel", "boot-initrd"}
    assert resource_set["size"] == sum(f["size"] for f in resource_set["files"].values())
    assert resource_set["label"] == "stable"
    assert "base_image" not in body


def test_read_unknown_id_is_404_text(admin: Maas) -> None:
    response = admin.get("boot-resources/9999/")

    assert response.status_code == 404
    assert response.text == "No BootResource matches the given query."
    assert response.headers["content-type"] == "text/plain"


def test_read_non_numeric_id_is_a_500(admin: Maas) -> None:
    response = admin.get("boot-resources/abc/")

    assert (response.status_code, response.text) == (
        500,
        "Field 'id' expected a number but got 'abc'.",
    )


def test_put_on_a_resource_is_405_with_allow(admin: Maas) -> None:
    response = admin.put("boot-resources/1/")

    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"


# -- delete --------------------------------------------------------------------------------


def test_delete_removes_the_resource_with_204(admin: Maas) -> None:
    rocky = _find(admin, "rocky8")

    response = admin.delete(f"boot-resources/{rocky['id']}/")

    assert (response.status_code, response.content) == (204, b"")
    assert admin.get(f"boot-resources/{rocky['id']}/").status_code == 404


def test_delete_of_a_missing_id_is_the_500_quirk(admin: Maas) -> None:
    response = admin.delete("boot-resources/9999/")

    assert (response.status_code, response.text) == (
        500,
        "BootResource matching query does not exist.",
    )
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


# -- create --------------------------------------------------------------------------------


def test_create_returns_201_with_an_incomplete_set_and_upload_uri(admin: Maas) -> None:
    response = _create(admin, base_image="ubuntu/noble")

    assert response.status_code == 201
    body = response.json()
    assert body["type"] == "Uploaded"
    assert body["name"] == "custom-image"
    assert body["subarches"] == "generic"
    assert body["title"] == "A custom image"
    assert body["base_image"] == "ubuntu/noble"
    assert body["last_deployed"] is None
    (version,) = body["sets"]
    assert len(version) == 8
    assert version.isdigit()
    resource_set = body["sets"][version]
    assert resource_set["label"] == "uploaded"
    assert resource_set["size"] == 1024
    assert resource_set["complete"] is False
    assert resource_set["progress"] == 0.0
    (rfile,) = resource_set["files"].values()
    assert rfile["filename"] == "root.tgz"
    assert rfile["sha256"] == SHA
    assert rfile["complete"] is False
    assert rfile["progress"] == 0.0
    assert rfile["upload_uri"].startswith(f"/MAAS/api/2.0/boot-resources/{body['id']}/upload/")


def test_create_again_adds_a_new_set_version_to_the_same_resource(admin: Maas) -> None:
    first = _create(admin).json()

    second = _create(admin, sha256="b" * 64).json()
    third = _create(admin, sha256="c" * 64).json()

    assert second["id"] == first["id"] == third["id"]
    (day,) = first["sets"]
    assert list(third["sets"]) == [f"{day}.2", f"{day}.1", day]


def test_create_without_keep_old_empties_older_sets(admin: Maas) -> None:
    _create(admin)

    body = _create(admin, sha256="b" * 64).json()

    newest, older = body["sets"].values()
    assert len(newest["files"]) == 1
    assert older["files"] == {}
    assert older["size"] == 0
    assert older["complete"] is False


def test_create_with_keep_old_keeps_older_files(admin: Maas) -> None:
    _create(admin)

    body = _create(admin, sha256="b" * 64, keep_old="true").json()

    assert [len(s["files"]) for s in body["sets"].values()] == [1, 1]


def test_create_missing_fields_lists_each_one(admin: Maas) -> None:
    response = admin.post("boot-resources/")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "name": ["This field is required."],
        "architecture": ["This field is required."],
        "sha256": ["This field is required."],
        "size": ["This field is required."],
    }


def test_create_rejects_an_unusable_architecture(admin: Maas) -> None:
    response = _create(admin, architecture="riscv64/generic")

    message = response.json()["architecture"][0]
    assert message.startswith(
        "'riscv64/generic' is not a valid architecture.  It should be one of: "
    )
    assert "'amd64/generic'" in message
    assert "'arm64/ga-22.04'" in message
    assert message.endswith(".")


def test_create_validates_sha256_length_and_size_number(admin: Maas) -> None:
    response = _create(admin, sha256="abc", size="lots")

    assert response.json() == {
        "sha256": ["Ensure this value has at least 64 characters (it has 3)."],
        "size": ["Enter a whole number."],
    }


def test_create_rejects_an_unknown_filetype(admin: Maas) -> None:
    response = _create(admin, filetype="zip")

    assert response.json() == {
        "filetype": ["Select a valid choice. zip is not one of the available choices."]
    }


@pytest.mark.parametrize(
    ("filetype", "stored", "filename"),
    [
        ("tgz", "root-tgz", "root.tgz"),
        ("tbz", "root-tbz", "root.tbz"),
        ("txz", "root-txz", "root.txz"),
        ("ddtgz", "root-dd", "root-dd"),
        ("ddtbz", "root-dd.tar.bz2", "root-dd.tar.bz2"),
        ("ddtxz", "root-dd.tar.xz", "root-dd.tar.xz"),
        ("ddtar", "root-dd.tar", "root-dd.tar"),
        ("ddbz2", "root-dd.bz2", "root-dd.bz2"),
        ("ddgz", "root-dd.gz", "root-dd.gz"),
        ("ddxz", "root-dd.xz", "root-dd.xz"),
        ("ddraw", "root-dd.raw", "root-dd.raw"),
    ],
)
def test_create_maps_the_upload_filetype(
    admin: Maas, filetype: str, stored: str, filename: str
) -> None:
    body = _create(admin, filetype=filetype).json()

    (resource_set,) = body["sets"].values()
    assert resource_set["files"][filename]["filetype"] == stored


def test_create_defaults_filetype_to_tgz(admin: Maas) -> None:
    body = _create(admin, filetype="<absent>").json()

    (resource_set,) = body["sets"].values()
    assert list(resource_set["files"]) == ["root.tgz"]


def test_create_strips_the_custom_prefix(admin: Maas) -> None:
    assert _create(admin, name="custom/my-image").json()["name"] == "my-image"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ubuntu/jammy", "ubuntu/jammy is a reserved name"),
        ("jammy", "jammy is a reserved name"),
        ("ubuntu", "ubuntu is a reserved name"),
        ("pxelinux", "pxelinux is a reserved name"),
        ("centos8", "centos8 is a reserved name"),
        ("custom/centos70", "centos70 is a reserved name"),
        ("rhel", "rhel is a reserved name"),
    ],
)
def test_create_rejects_reserved_names(admin: Maas, name: str, message: str) -> None:
    assert _create(admin, name=name).json() == {"name": [message]}


def test_create_rejects_an_unsupported_os_prefix(admin: Maas) -> None:
    response = _create(admin, name="plan9/fourth")

    assert response.json() == {
        "name": [
            "Unsupport operating system plan9, supported operating systems: ['ubuntu', "
            "'ubuntu-core', 'bootloader', 'centos', 'rhel', 'custom', 'windows', 'suse', "
            "'esxi', 'ol']"
        ]
    }


def test_create_with_two_slashes_in_the_name_is_a_500(admin: Maas) -> None:
    response = _create(admin, name="a/b/c")

    assert (response.status_code, response.text) == (500, "too many values to unpack (expected 2)")


def test_create_with_a_supported_os_name_has_no_base_image(admin: Maas) -> None:
    body = _create(admin, name="windows/win2019", base_image="rhel/9").json()

    assert body["name"] == "windows/win2019"
    assert "base_image" not in body


def test_create_without_base_image_uses_the_commissioning_release(admin: Maas) -> None:
    assert _create(admin).json()["base_image"] == "ubuntu/jammy"


@pytest.mark.parametrize(
    ("base_image", "message"),
    [
        ("rhel9", "a base image must follow the format: <osystem>/<series>"),
        ("windows/2019", "custom images require a valid non-custom OS type base image"),
        ("ubuntu/warty", "please select a valid base image OS and version"),
    ],
)
def test_create_validates_base_image(admin: Maas, base_image: str, message: str) -> None:
    assert _create(admin, base_image=base_image).json() == {"base_image": [message]}


def test_create_keeps_the_base_image_of_an_existing_resource(admin: Maas) -> None:
    _create(admin, base_image="rhel/8")

    assert _create(admin, sha256="b" * 64).json()["base_image"] == "rhel/8"


def test_create_with_a_known_sha256_of_another_size_is_refused(admin: Maas) -> None:
    _create(admin, size="2048")

    response = _create(admin, name="other-image", size="4096")

    assert (response.status_code, response.text) == (
        400,
        "File already exists with sha256 that is of different size.",
    )
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_create_with_stored_identical_content_needs_its_upload_again_from_3_5(
    admin: Maas,
) -> None:
    # 3.5 stores each file apart: known content is uploaded again (test_versions.py has 3.4).
    alma = admin.get(f"boot-resources/{_find(admin, 'alma9')['id']}/").json()
    stored = next(iter(alma["sets"].values()))["files"]["root.tgz"]

    body = _create(admin, sha256=stored["sha256"], size=str(stored["size"])).json()

    (resource_set,) = body["sets"].values()
    assert resource_set["complete"] is False
    (rfile,) = resource_set["files"].values()
    assert rfile["complete"] is False
    assert "upload_uri" in rfile


def test_create_accepts_whole_content_in_one_file_part(admin: Maas) -> None:
    content = b"a tiny root tarball"

    body = _create(
        admin, sha256="<absent>", size="<absent>", content=FilePart(content, "root.tgz")
    ).json()

    (resource_set,) = body["sets"].values()
    (rfile,) = resource_set["files"].values()
    assert rfile["complete"] is True
    assert rfile["sha256"] == hashlib.sha256(content).hexdigest()
    assert rfile["size"] == len(content)


def test_create_accepts_a_urlencoded_body(admin: Maas) -> None:
    body = (
        "name=urlencoded-image&architecture=amd64%2Fgeneric&size=10&sha256=" + "d" * 64
    ).encode()

    response = admin.post(
        "boot-resources/",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 201
    assert response.json()["name"] == "urlencoded-image"


def test_create_accepts_a_json_body(admin: Maas) -> None:
    response = admin.post(
        "boot-resources/",
        json={"name": "json-image", "architecture": "arm64/generic", "size": 10, "sha256": SHA},
    )

    assert response.status_code == 201
    assert response.json()["architecture"] == "arm64/generic"


def test_list_reaches_fifty_when_extra_resources_are_seeded(
    maas_for: Any,
) -> None:
    admin, _ = maas_for(extra_resources=40)

    resources = admin.get("boot-resources/").json()

    assert len(resources) >= 50
    for resource in resources[-40:]:
        detail = admin.get(f"boot-resources/{resource['id']}/").json()
        assert detail["sets"]
        assert all(s["files"] for s in list(detail["sets"].values())[:1])
