"""Boot sources CRUD with the keyring rules of maas-api.md §6."""

from __future__ import annotations

import base64
import re
import time

from .helpers import FilePart, Maas

KEYRING = b"\x99\x01\x0d\x04binary-gpg-keyring\x00\xff"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?$")


def test_list_has_the_default_source(admin: Maas) -> None:
    response = admin.get("boot-sources/")

    assert response.status_code == 200
    (source,) = response.json()
    assert source["id"] == 1
    assert source["url"] == "http://images.maas.io/ephemeral-v3/stable/"
    assert source["keyring_filename"] == "/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg"
    assert source["keyring_data"] == ""
    assert source["resource_uri"] == "/MAAS/api/2.0/boot-sources/1/"
    assert TIMESTAMP.match(source["created"])
    assert TIMESTAMP.match(source["updated"])
    assert "name" not in source


def test_create_with_keyring_filename_is_201(admin: Maas) -> None:
    response = admin.post(
        "boot-sources/",
        fields=[("url", "http://mirror.example/maas/"), ("keyring_filename", "/k.gpg")],
    )

    assert response.status_code == 201
    body = response.json()
    assert body["url"] == "http://mirror.example/maas/"
    assert body["keyring_filename"] == "/k.gpg"
    assert body["keyring_data"] == ""
    assert body["created"] == body["updated"]
    assert admin.get(f"boot-sources/{body['id']}/").json() == body


def test_create_with_a_keyring_file_part_returns_it_base64(admin: Maas) -> None:
    response = admin.post(
        "boot-sources/",
        fields=[
            ("url", "http://mirror.example/maas/"),
            ("keyring_filename", ""),
            ("keyring_data", FilePart(KEYRING)),
        ],
    )

    assert response.status_code == 201
    assert base64.b64decode(response.json()["keyring_data"]) == KEYRING


def test_plain_keyring_data_field_is_ignored(admin: Maas) -> None:
    response = admin.post(
        "boot-sources/",
        fields=[("url", "http://mirror.example/maas/"), ("keyring_data", "not-a-file")],
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "__all__": ["One of keyring_data or keyring_filename must be specified."]
    }


def test_empty_keyring_file_is_rejected(admin: Maas) -> None:
    response = admin.post(
        "boot-sources/",
        fields=[
            ("url", "http://mirror.example/maas/"),
            ("keyring_data", FilePart(b"")),
        ],
    )

    assert response.json()["keyring_data"] == ["The submitted file is empty."]


def test_both_keyrings_is_one_too_many(admin: Maas) -> None:
    response = admin.post(
        "boot-sources/",
        fields=[
            ("url", "http://mirror.example/maas/"),
            ("keyring_filename", "/k.gpg"),
            ("keyring_data", FilePart(KEYRING)),
        ],
    )

    assert response.json() == {
        "__all__": ["Only one of keyring_filename or keyring_data can be specified."]
    }


def test_a_json_index_url_needs_no_keyring(admin: Maas) -> None:
    response = admin.post("boot-sources/", fields=[("url", "http://mirror.example/index.json")])

    assert response.status_code == 201


def test_url_is_required_and_validated(admin: Maas) -> None:
    missing = admin.post("boot-sources/", fields=[("keyring_filename", "/k.gpg")])
    invalid = admin.post(
        "boot-sources/", fields=[("url", "not a url"), ("keyring_filename", "/k.gpg")]
    )

    assert missing.json() == {"url": ["This field is required."]}
    assert invalid.json() == {"url": ["Enter a valid URL."]}


def test_duplicate_url_is_400(admin: Maas) -> None:
    response = admin.post(
        "boot-sources/",
        fields=[
            ("url", "http://images.maas.io/ephemeral-v3/stable/"),
            ("keyring_filename", "/k.gpg"),
        ],
    )

    assert response.status_code == 400
    assert response.json() == {"url": ["Boot source with this Url already exists."]}


def test_update_is_partial(admin: Maas) -> None:
    before = admin.get("boot-sources/1/").json()
    time.sleep(0.002)

    response = admin.put("boot-sources/1/", fields=[("url", "http://mirror.example/stable/")])

    assert response.status_code == 200
    after = response.json()
    assert after["url"] == "http://mirror.example/stable/"
    assert after["keyring_filename"] == before["keyring_filename"]
    assert after["created"] == before["created"]
    assert after["updated"] != before["updated"]


def test_update_can_swap_filename_for_keyring_data(admin: Maas) -> None:
    response = admin.put(
        "boot-sources/1/",
        fields=[("keyring_filename", ""), ("keyring_data", FilePart(KEYRING))],
    )

    assert response.status_code == 200
    assert response.json()["keyring_filename"] == ""
    assert base64.b64decode(response.json()["keyring_data"]) == KEYRING


def test_partial_update_of_a_keyring_data_source_is_the_500_quirk(admin: Maas) -> None:
    source = admin.post(
        "boot-sources/",
        fields=[("url", "http://mirror.example/maas/"), ("keyring_data", FilePart(KEYRING))],
    ).json()

    response = admin.put(f"boot-sources/{source['id']}/", fields=[("url", "http://m.example/")])

    assert (response.status_code, response.text) == (
        500,
        "'memoryview' object has no attribute 'read'",
    )


def test_delete_cascades_to_selections(admin: Maas) -> None:
    response = admin.delete("boot-sources/1/")

    assert (response.status_code, response.content) == (204, b"")
    assert admin.get("boot-sources/").json() == []
    missing = admin.get("boot-sources/1/selections/1/")
    assert (missing.status_code, missing.text) == (404, "No BootSource matches the given query.")


def test_unknown_source_is_404(admin: Maas) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = admin.request(method, "boot-sources/99/")
        assert (response.status_code, response.text) == (
            404,
            "No BootSource matches the given query.",
        )


def test_collection_refuses_delete_with_405(admin: Maas) -> None:
    response = admin.delete("boot-sources/")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
