"""Boot source selections: validation against the image index, lists, duplicates (§7)."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Maas

SELECTIONS = "boot-sources/1/selections/"


def _create(admin: Maas, fields: list[tuple[str, str]], source: int = 1) -> Any:
    return admin.post(f"boot-sources/{source}/selections/", fields=fields)


def test_list_has_the_seeded_selections(admin: Maas) -> None:
    selections = admin.get(SELECTIONS).json()

    assert [(s["os"], s["release"]) for s in selections] == [
        ("ubuntu", "jammy"),
        ("ubuntu", "noble"),
    ]
    jammy = selections[0]
    assert jammy == {
        "id": jammy["id"],
        "boot_source_id": 1,
        "os": "ubuntu",
        "release": "jammy",
        "arches": ["amd64", "arm64"],
        "subarches": ["*"],
        "labels": ["*"],
        "resource_uri": f"/MAAS/api/2.0/boot-sources/1/selections/{jammy['id']}/",
    }


def test_create_answers_200_with_repeated_keys_as_lists(admin: Maas) -> None:
    response = _create(
        admin,
        [
            ("os", "ubuntu"),
            ("release", "focal"),
            ("arches", "amd64"),
            ("arches", "ppc64el"),
            ("subarches", "ga-20.04"),
            ("labels", "stable"),
        ],
    )

    assert response.status_code == 200
    body = response.json()
    assert body["boot_source_id"] == 1
    assert body["arches"] == ["amd64", "ppc64el"]
    assert body["subarches"] == ["ga-20.04"]
    assert body["labels"] == ["stable"]
    assert admin.get(f"{SELECTIONS}{body['id']}/").json() == body


def test_create_does_not_split_commas(admin: Maas) -> None:
    response = _create(admin, [("os", "ubuntu"), ("release", "focal"), ("arches", "amd64,arm64")])

    assert response.json() == {"arches": ["No available images to download for ['amd64,arm64']"]}


def test_create_with_unknown_release_has_no_images(admin: Maas) -> None:
    response = _create(admin, [("os", "ubuntu"), ("release", "warty"), ("arches", "*")])

    assert response.status_code == 400
    assert response.json() == {
        "os": ["OS ubuntu with release warty has no available images for download"]
    }


def test_create_reports_each_unavailable_list(admin: Maas) -> None:
    response = _create(
        admin,
        [
            ("os", "ubuntu"),
            ("release", "focal"),
            ("arches", "sparc"),
            ("subarches", "hwe-99.04"),
            ("labels", "nightly"),
        ],
    )

    assert response.json() == {
        "arches": ["No available images to download for ['sparc']"],
        "subarches": ["No available images to download for ['hwe-99.04']"],
        "labels": ["No available images to download for ['nightly']"],
    }


def test_create_accepts_a_candidate_label_where_the_index_has_one(admin: Maas) -> None:
    assert admin.delete(f"{SELECTIONS}{admin.get(SELECTIONS).json()[1]['id']}/").status_code == 204

    response = _create(admin, [("os", "ubuntu"), ("release", "noble"), ("labels", "candidate")])

    assert response.status_code == 200
    assert response.json()["arches"] == []


def test_duplicate_os_release_on_a_source_is_400(admin: Maas) -> None:
    response = _create(admin, [("os", "ubuntu"), ("release", "jammy"), ("arches", "*")])

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "__all__": ["Boot source selection with this Boot source, Os and Release already exists."]
    }


def test_new_source_with_an_unreachable_url_cannot_get_selections(admin: Maas) -> None:
    source = admin.post(
        "boot-sources/", fields=[("url", "http://mirror.invalid/"), ("keyring_filename", "/k")]
    ).json()

    response = _create(admin, [("os", "ubuntu"), ("release", "jammy")], source=source["id"])

    assert response.json() == {
        "os": ["OS ubuntu with release jammy has no available images for download"]
    }


def test_new_images_maas_io_source_can_get_selections(admin: Maas) -> None:
    source = admin.post(
        "boot-sources/",
        fields=[
            ("url", "http://images.maas.io/ephemeral-v3/candidate/"),
            ("keyring_filename", "/k"),
        ],
    ).json()

    response = _create(
        admin,
        [("os", "ubuntu"), ("release", "jammy"), ("labels", "candidate")],
        source=source["id"],
    )

    assert response.status_code == 200


def test_json_body_lists_are_accepted(admin: Maas) -> None:
    response = admin.post(
        SELECTIONS,
        json={"os": "ubuntu", "release": "focal", "arches": ["amd64", "s390x"], "labels": "*"},
    )

    assert response.status_code == 200
    assert response.json()["arches"] == ["amd64", "s390x"]
    assert response.json()["labels"] == ["*"]


def test_update_is_partial(admin: Maas) -> None:
    jammy = admin.get(SELECTIONS).json()[0]

    response = admin.put(f"{SELECTIONS}{jammy['id']}/", fields=[("arches", "s390x")])

    assert response.status_code == 200
    assert response.json() == {**jammy, "arches": ["s390x"]}


def test_update_validates_against_the_index(admin: Maas) -> None:
    jammy = admin.get(SELECTIONS).json()[0]

    response = admin.put(f"{SELECTIONS}{jammy['id']}/", fields=[("release", "warty")])

    assert response.json() == {
        "os": ["OS ubuntu with release warty has no available images for download"]
    }


def test_update_to_a_taken_release_is_400(admin: Maas) -> None:
    noble = admin.get(SELECTIONS).json()[1]

    response = admin.put(f"{SELECTIONS}{noble['id']}/", fields=[("release", "jammy")])

    assert response.status_code == 400
    assert response.json() == {
        "__all__": ["Boot source selection with this Boot source, Os and Release already exists."]
    }


def test_delete_of_the_commissioning_release_is_refused(admin: Maas) -> None:
    jammy = admin.get(SELECTIONS).json()[0]

    response = admin.delete(f"{SELECTIONS}{jammy['id']}/")

    assert (response.status_code, response.text) == (
        400,
        "Unable to delete ubuntu jammy. It is the operating system used for commissioning.",
    )
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_delete_of_another_release_is_204(admin: Maas) -> None:
    noble = admin.get(SELECTIONS).json()[1]

    response = admin.delete(f"{SELECTIONS}{noble['id']}/")

    assert (response.status_code, response.content) == (204, b"")
    assert len(admin.get(SELECTIONS).json()) == 1


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("boot-sources/99/selections/", "No BootSource matches the given query."),
        ("boot-sources/99/selections/1/", "No BootSource matches the given query."),
        ("boot-sources/1/selections/99/", "No BootSourceSelection matches the given query."),
    ],
)
def test_missing_source_or_selection_is_404(admin: Maas, path: str, text: str) -> None:
    response = admin.get(path)

    assert (response.status_code, response.text) == (404, text)


def test_selection_of_another_source_is_404(admin: Maas) -> None:
    source = admin.post(
        "boot-sources/",
        fields=[("url", "http://images.maas.io/ephemeral-v3/daily/"), ("keyring_filename", "/k")],
    ).json()
    jammy = admin.get(SELECTIONS).json()[0]

    response = admin.get(f"boot-sources/{source['id']}/selections/{jammy['id']}/")

    assert (response.status_code, response.text) == (
        404,
        "No BootSourceSelection matches the given query.",
    )
