"""REST boot sources and selections CRUD against the simulator."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import maas_call, reset_counts, upstream_counts
from tests.rest.conftest import envelope

SOURCE_KEYS = {
    *("id", "url", "keyring_filename", "keyring_data", "created", "updated"),
    # MAAS 3.8's own, null on the simulator's default version (tests/service has 3.8).
    *("name", "priority", "enabled", "skip_keyring_verification"),
}
SELECTION_KEYS = {"id", "boot_source_id", "os", "release", "arches", "subarches", "labels"}


def default_source(api: httpx.Client) -> dict[str, Any]:
    return next(s for s in api.get("/boot-sources").json() if "images.maas.io" in s["url"])


def test_list_boot_sources_returns_clean_sources(api: httpx.Client) -> None:
    response = api.get("/boot-sources")
    assert response.status_code == 200
    sources = response.json()
    assert sources
    for source in sources:
        assert set(source) == SOURCE_KEYS
    assert "resource_uri" not in response.text
    created = sources[0]["created"]
    assert created is None or created.endswith("Z"), "RFC 3339 in UTC"


def test_create_boot_source_with_keyring_bytes(api: httpx.Client) -> None:
    api.get("/boot-sources")  # cached now: the create must still show at once
    keyring = b"\x99\x01\rfake-gpg-keyring\x00\xff"
    response = api.post(
        "/boot-sources",
        json={
            "url": "http://mirror.example.com/images/",
            "keyring_data": base64.b64encode(keyring).decode(),
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == SOURCE_KEYS
    assert base64.b64decode(created["keyring_data"]) == keyring
    assert created["keyring_filename"] == ""
    assert response.headers["location"] == f"/api/v1/boot-sources/{created['id']}"
    assert created["id"] in {s["id"] for s in api.get("/boot-sources").json()}
    assert api.get(f"/boot-sources/{created['id']}").json() == created


def test_create_boot_source_with_keyring_filename(api: httpx.Client) -> None:
    response = api.post(
        "/boot-sources", json={"url": "http://a.example.com/", "keyring_filename": "/k.gpg"}
    )
    assert response.status_code == 201
    assert response.json()["keyring_filename"] == "/k.gpg"
    assert response.json()["keyring_data"] == ""


def test_invalid_base64_keyring_is_rejected_before_maas(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    reset_counts(simulator.url)
    response = api.post(
        "/boot-sources", json={"url": "http://y.example.com/", "keyring_data": "not base64!"}
    )
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert "base64" in " ".join(error["details"]["fields"]["keyring_data"])
    assert upstream_counts(simulator.url) == {}


def test_create_boot_source_shows_maas_field_messages(api: httpx.Client) -> None:
    duplicate = api.post(
        "/boot-sources",
        json={"url": default_source(api)["url"], "keyring_filename": "/k.gpg"},
    )
    assert duplicate.status_code == 400
    error = envelope(duplicate)
    assert error["code"] == "VALIDATION"
    assert "url" in error["details"]["fields"]
    neither = api.post("/boot-sources", json={"url": "http://x.example.com/"})
    assert neither.status_code == 400
    fields = envelope(neither)["details"]["fields"]
    assert "keyring" in " ".join(fields["__all__"])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": 5, "keyring_filename": "/k"},
        {"url": "http://b.example.com/", "keyring_filename": "/k", "colour": "red"},
    ],
)
def test_malformed_boot_source_bodies_are_rejected_per_field(
    api: httpx.Client, body: dict[str, Any]
) -> None:
    response = api.post("/boot-sources", json=body)
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert error["details"]["fields"]


def test_a_body_that_is_not_json_is_rejected(api: httpx.Client) -> None:
    response = api.post(
        "/boot-sources", content=b"{url", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert envelope(response)["code"] == "VALIDATION"


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_update_boot_source_is_partial(api: httpx.Client, method: str) -> None:
    created = api.post(
        "/boot-sources", json={"url": "http://z.example.com/", "keyring_filename": "/k.gpg"}
    ).json()
    api.get(f"/boot-sources/{created['id']}")  # cached now
    response = api.request(
        method, f"/boot-sources/{created['id']}", json={"url": "http://w.example.com/"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["url"] == "http://w.example.com/"
    assert response.json()["keyring_filename"] == "/k.gpg"
    again = api.get(f"/boot-sources/{created['id']}").json()
    assert (again["url"], again["keyring_filename"]) == ("http://w.example.com/", "/k.gpg")


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_update_of_a_keyring_data_source_keeps_its_keyring(api: httpx.Client, method: str) -> None:
    # MAAS answers 500 to an update that does not upload the keyring again (maas-api.md §6.3):
    # the gateway sends the stored one.
    keyring = base64.b64encode(b"\x99\x01\rkept-keyring").decode()
    created = api.post(
        "/boot-sources", json={"url": "http://kept.example.com/", "keyring_data": keyring}
    ).json()
    response = api.request(
        method, f"/boot-sources/{created['id']}", json={"url": "http://moved.example.com/"}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["url"], response.json()["keyring_data"]) == (
        "http://moved.example.com/",
        keyring,
    )


def test_delete_boot_source(api: httpx.Client, simulator: BackgroundServer) -> None:
    created = api.post(
        "/boot-sources", json={"url": "http://v.example.com/", "keyring_filename": "/k.gpg"}
    ).json()
    api.get(f"/boot-sources/{created['id']}")
    response = api.delete(f"/boot-sources/{created['id']}")
    assert (response.status_code, response.content) == (204, b"")
    missing = api.get(f"/boot-sources/{created['id']}")
    assert missing.status_code == 404
    assert envelope(missing)["code"] == "NOT_FOUND"
    assert created["id"] not in {s["id"] for s in api.get("/boot-sources").json()}
    upstream = maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_sources())
    assert created["id"] not in {s.id for s in upstream}
    assert api.delete(f"/boot-sources/{created['id']}").status_code == 404


def test_selections_crud(api: httpx.Client) -> None:
    source = default_source(api)
    base = f"/boot-sources/{source['id']}/selections"
    listed = api.get(base)
    assert listed.status_code == 200
    existing = listed.json()
    assert all(set(s) == SELECTION_KEYS for s in existing)
    taken = {(s["os"], s["release"]) for s in existing}
    release = next(r for r in ("focal", "noble", "jammy") if ("ubuntu", r) not in taken)

    created = api.post(base, json={"os": "ubuntu", "release": release, "arches": ["amd64"]})
    assert created.status_code == 201, created.text
    selection = created.json()
    assert selection["boot_source_id"] == source["id"]
    assert selection["arches"] == ["amd64"]
    assert created.headers["location"] == f"/api/v1{base}/{selection['id']}"
    assert selection["id"] in {s["id"] for s in api.get(base).json()}
    assert api.get(f"{base}/{selection['id']}").json() == selection

    for method, arches in (("PATCH", ["amd64", "arm64"]), ("PUT", ["arm64"])):
        updated = api.request(method, f"{base}/{selection['id']}", json={"arches": arches})
        assert updated.status_code == 200, updated.text
        assert (updated.json()["arches"], updated.json()["release"]) == (arches, release)
        assert api.get(f"{base}/{selection['id']}").json()["arches"] == arches

    deleted = api.delete(f"{base}/{selection['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert selection["id"] not in {s["id"] for s in api.get(base).json()}
    assert api.get(f"{base}/{selection['id']}").status_code == 404


def test_create_selection_shows_maas_field_messages(api: httpx.Client) -> None:
    source = default_source(api)
    response = api.post(
        f"/boot-sources/{source['id']}/selections", json={"os": "ubuntu", "release": "warty"}
    )
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert "no available images" in " ".join(error["details"]["fields"]["os"])


def test_selections_of_an_unknown_source_are_not_found(api: httpx.Client) -> None:
    response = api.get("/boot-sources/987654/selections")
    assert response.status_code == 404
    assert envelope(response)["code"] == "NOT_FOUND"


def test_bad_source_and_selection_ids_are_rejected(api: httpx.Client) -> None:
    for path in ("/boot-sources/x", "/boot-sources/1/selections/0", "/boot-sources/-1/selections"):
        response = api.get(path)
        assert response.status_code == 400, path
        assert envelope(response)["code"] == "VALIDATION"


def test_a_selection_created_without_lists_selects_everything_in_maas(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    source = default_source(api)
    base = f"/boot-sources/{source['id']}/selections"
    taken = {(s["os"], s["release"]) for s in api.get(base).json()}
    release = next(r for r in ("focal", "noble", "jammy") if ("ubuntu", r) not in taken)
    created = api.post(base, json={"os": "ubuntu", "release": release})
    assert created.status_code == 201, created.text
    selection = created.json()
    assert (selection["arches"], selection["subarches"], selection["labels"]) == (
        ["*"],
        ["*"],
        ["*"],
    )
    upstream = maas_call(
        simulator.url,
        ADMIN_KEY,
        lambda maas: maas.get_boot_source_selection(source["id"], selection["id"]),
    )
    assert (upstream.arches, upstream.subarches, upstream.labels) == (["*"], ["*"], ["*"])
