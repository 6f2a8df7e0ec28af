"""What changes with `maas_version`: timestamps, file names, fields, texts (maas-api.md §0)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.simulator import SimulatorConfig, create_simulator

from .helpers import FilePart, Maas, oauth_header

Clients = Callable[..., tuple[Maas, Maas]]


def _upload_fields(name: str, content: bytes) -> list[tuple[str, str]]:
    return [
        ("name", name),
        ("architecture", "amd64/generic"),
        ("size", str(len(content))),
        ("sha256", hashlib.sha256(content).hexdigest()),
    ]


def _only_file(body: dict[str, Any]) -> dict[str, Any]:
    (rfile,) = body["sets"][max(body["sets"])]["files"].values()
    return rfile  # type: ignore[no-any-return]


@pytest.mark.parametrize(("version", "zoned"), [("3.4", False), ("3.5", False), ("3.6", True)])
def test_timestamps_gain_a_z_suffix_from_3_6(maas_for: Clients, version: str, zoned: bool) -> None:
    admin, _ = maas_for(maas_version=version)

    created = admin.get("boot-sources/1/").json()["created"]

    assert created.endswith("Z") is zoned
    assert len(created.rstrip("Z").split(".")[1]) == 3


@pytest.mark.parametrize(("version", "filename"), [("3.4", "root-tgz"), ("3.5", "root.tgz")])
def test_uploaded_tarball_name_changes_at_3_5(
    maas_for: Clients, version: str, filename: str
) -> None:
    admin, _ = maas_for(maas_version=version)

    body = admin.post("boot-resources/", fields=_upload_fields("named", b"x" * 10)).json()

    assert _only_file(body)["filename"] == filename
    assert ("filename_on_disk" in _only_file(body)) is (version == "3.5")


@pytest.mark.parametrize(("version", "present"), [("3.3", False), ("3.4", True)])
def test_last_deployed_appears_in_3_4(maas_for: Clients, version: str, present: bool) -> None:
    admin, _ = maas_for(maas_version=version)

    resources = admin.get("boot-resources/").json()

    assert all(("last_deployed" in r) is present for r in resources)
    if present:
        assert any(r["last_deployed"] for r in resources)


@pytest.mark.parametrize(("version", "shown"), [("3.4", False), ("3.5", True)])
def test_base_image_is_returned_from_3_5(maas_for: Clients, version: str, shown: bool) -> None:
    admin, _ = maas_for(maas_version=version)

    alma = next(r for r in admin.get("boot-resources/").json() if r["name"] == "alma9")

    assert ("base_image" in alma) is shown


def test_generated_type_filter_exists_when_3_4_or_earlier(maas_for: Clients) -> None:
    admin, _ = maas_for(maas_version="3.4")

    generated = admin.get("boot-resources/", params={"type": "generated"})
    bogus = admin.get("boot-resources/", params={"type": "bogus"})

    assert (generated.status_code, generated.json()) == (200, [])
    assert bogus.text == (
        "'bogus' is not a valid boot resource type. "
        "Available types: ['synced', 'generated', 'uploaded']"
    )


@pytest.mark.parametrize(
    ("version", "text"),
    [("3.2", "Not Found"), ("3.3", "No BootResource matches the given query.")],
)
def test_not_found_text_changes_at_3_3(maas_for: Clients, version: str, text: str) -> None:
    admin, _ = maas_for(maas_version=version)

    response = admin.get("boot-resources/9999/")

    assert (response.status_code, response.text) == (404, text)


def test_file_progress_is_an_inverted_ratio_when_3_4(maas_for: Clients) -> None:
    admin, _ = maas_for(maas_version="3.4")
    content = os.urandom(1000)
    body = admin.post("boot-resources/", fields=_upload_fields("half", content)).json()
    before = _only_file(body)

    admin.upload(before["upload_uri"], content[:500])
    after = admin.get(f"boot-resources/{body['id']}/").json()

    assert before["progress"] == 0
    assert _only_file(after)["progress"] == 2.0
    assert after["sets"][max(after["sets"])]["progress"] == 50.0


def test_upload_handler_and_source_fields_appear_when_3_8(maas_for: Clients) -> None:
    admin, _ = maas_for(maas_version="3.8")

    names = {r["name"] for r in admin.get("describe/").json()["resources"]}
    source = admin.get("boot-sources/1/").json()

    assert "BootResourceFileUploadHandler" in names
    assert source["name"] == "http://images.maas.io/ephemeral-v3/stable/"
    assert source["priority"] == 1
    assert source["enabled"] is True
    assert source["skip_keyring_verification"] is False


def test_url_slash_is_stripped_and_new_fields_default_when_3_8(maas_for: Clients) -> None:
    admin, _ = maas_for(maas_version="3.8")

    body = admin.post(
        "boot-sources/",
        fields=[("url", "http://mirror.example/maas/"), ("skip_keyring_verification", "true")],
    ).json()

    assert body["url"] == "http://mirror.example/maas"
    assert body["name"] == "http://mirror.example/maas"
    assert body["priority"] == 2
    assert body["skip_keyring_verification"] is True


@pytest.mark.parametrize(("priority", "status"), [("2147483647", 200), ("2147483648", 400)])
def test_priority_beyond_a_postgres_integer_is_refused_when_3_8(
    maas_for: Clients, priority: str, status: int
) -> None:
    admin, _ = maas_for(maas_version="3.8")

    response = admin.put("boot-sources/1/", fields=[("priority", priority)])

    assert response.status_code == status, response.text
    if status == 400:
        assert "2147483647" in response.json()["priority"][0]


def test_custom_prefix_is_kept_and_commissioning_delete_allowed_when_3_8(maas_for: Clients) -> None:
    admin, _ = maas_for(maas_version="3.8")

    created = admin.post("boot-resources/", fields=_upload_fields("custom/kept", b"1"))
    jammy = admin.get("boot-sources/1/selections/").json()[0]

    assert created.json()["name"] == "custom/kept"
    assert admin.delete(f"boot-sources/1/selections/{jammy['id']}/").status_code == 204


def test_sha256_and_size_are_required_with_content_when_3_8(maas_for: Clients) -> None:
    admin, _ = maas_for(maas_version="3.8")

    response = admin.post(
        "boot-resources/",
        fields=[
            ("name", "whole"),
            ("architecture", "amd64/generic"),
            ("content", FilePart(b"data")),
        ],
    )

    assert response.json() == {
        "sha256": ["This field is required."],
        "size": ["This field is required."],
    }


def test_wording_commissioning_release_and_django_errors_when_2_9(maas_for: Clients) -> None:
    admin, _ = maas_for(maas_version="2.9")

    version = admin.get("version/").json()
    focal = next(
        s for s in admin.get("boot-sources/1/selections/").json() if s["release"] == "focal"
    )
    refused = admin.delete(f"boot-sources/1/selections/{focal['id']}/")
    bad_id = admin.get("boot-resources/abc/")

    assert version["version"].startswith("2.9.")
    assert version["subversion"] != ""
    assert refused.text == (
        "Unable to delete ubuntu focal. It is the operating system used in ephemeral environments."
    )
    assert bad_id.text == "invalid literal for int() with base 10: 'abc'"


@pytest.mark.anyio
@pytest.mark.parametrize(("version", "spelled"), [("3.2", "recieved"), ("3.3", "received")])
async def test_content_length_message_spelling(version: str, spelled: str) -> None:
    config = SimulatorConfig(seed=3, maas_version=version)
    key = config.resolved_admin_key()
    transport = httpx.ASGITransport(app=create_simulator(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://maas") as client:
        created = await client.post(
            "/MAAS/api/2.0/boot-resources/",
            data=dict(_upload_fields("spelling", b"0123456789")),
            headers={"Authorization": oauth_header(key)},
        )
        response = await client.put(
            _only_file(created.json())["upload_uri"],
            content=b"0123456789",
            headers={"Authorization": oauth_header(key), "Content-Length": "3"},
        )

    assert response.text == f"Content-Length doesn't equal size of {spelled} data."


@pytest.mark.parametrize(
    ("version", "seeded"),
    [
        ("2.9", {"bionic", "focal"}),
        ("3.1", {"bionic", "focal"}),
        ("3.2", {"focal", "jammy"}),
        ("3.4", {"focal", "jammy"}),
        ("3.5", {"jammy", "noble"}),
        ("3.8", {"jammy", "noble"}),
    ],
)
def test_a_region_selects_the_releases_out_when_its_version_was(
    maas_for: Clients, version: str, seeded: set[str]
) -> None:
    admin, _ = maas_for(maas_version=version)
    selections = admin.get("boot-sources/1/selections/").json()
    assert {s["release"] for s in selections} == seeded
    synced = {r["name"] for r in admin.get("boot-resources/").json() if r["type"] == "Synced"}
    assert {n for n in synced if n.startswith("ubuntu/")} == {f"ubuntu/{r}" for r in seeded}


@pytest.mark.parametrize("release", ["bionic", "oracular", "plucky", "noble"])
def test_a_client_can_select_a_release_the_region_does_not_have(
    maas_for: Clients, release: str
) -> None:
    admin, _ = maas_for(maas_version="3.1")
    created = admin.post(
        "boot-sources/1/selections/",
        fields=[("os", "ubuntu"), ("release", release), ("arches", "amd64")],
    )
    if release == "bionic":  # already selected on 3.1
        assert created.status_code == 400, created.text
    else:
        assert created.status_code == 200, created.text
        assert created.json()["release"] == release


@pytest.mark.parametrize(("version", "complete"), [("3.4", True), ("3.5", False), ("3.8", False)])
def test_known_content_is_shared_up_to_3_4_and_uploaded_again_from_3_5(
    maas_for: Clients, version: str, complete: bool
) -> None:
    admin, _ = maas_for(maas_version=version)
    content = b"same bytes" * 100
    first = admin.post("boot-resources/", fields=_upload_fields("first", content)).json()
    uploaded = _only_file(first)
    assert admin.upload(uploaded["upload_uri"], content).status_code == 200
    again = _only_file(
        admin.post("boot-resources/", fields=_upload_fields("again", content)).json()
    )
    assert again["complete"] is complete
    assert ("upload_uri" in again) is not complete
