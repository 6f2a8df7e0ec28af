"""The chunked upload protocol of maas-api.md §5.5, rule by rule, and a libmaas-style run."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx
import pytest

from app.simulator import SimulatorConfig, create_simulator

from .helpers import Maas, oauth_header

CHUNK = 4 * 1024 * 1024


def _start(admin: Maas, content: bytes, name: str = "uploaded-image") -> tuple[int, str]:
    """POST the metadata like libmaas; return the resource id and the file's upload_uri."""
    response = admin.post(
        "boot-resources/",
        fields=[
            ("name", name),
            ("architecture", "amd64/generic"),
            ("title", ""),
            ("filetype", "tgz"),
            ("size", str(len(content))),
            ("sha256", hashlib.sha256(content).hexdigest()),
        ],
    )
    assert response.status_code == 201
    body = response.json()
    newest = body["sets"][max(body["sets"])]
    (rfile,) = newest["files"].values()
    return body["id"], rfile["upload_uri"]


def _file(admin: Maas, resource_id: int) -> dict[str, Any]:
    body = admin.get(f"boot-resources/{resource_id}/").json()
    newest = body["sets"][max(body["sets"])]
    (rfile,) = newest["files"].values()
    return rfile  # type: ignore[no-any-return]


def test_libmaas_style_chunked_upload_completes(admin: Maas) -> None:
    content = os.urandom(CHUNK * 2 + 12345)
    resource_id, upload_uri = _start(admin, content)

    for offset in range(0, len(content), CHUNK):
        response = admin.upload(upload_uri, content[offset : offset + CHUNK])
        assert response.status_code == 200
        assert response.text == "OK"
        assert response.headers["content-type"] == "text/plain"

    body = admin.get(f"boot-resources/{resource_id}/").json()
    resource_set = body["sets"][max(body["sets"])]
    assert resource_set["complete"] is True
    assert "progress" not in resource_set
    (rfile,) = resource_set["files"].values()
    assert rfile["complete"] is True
    assert "upload_uri" not in rfile


def test_each_chunk_appends_and_progress_rises(admin: Maas) -> None:
    content = os.urandom(4000)
    resource_id, upload_uri = _start(admin, content)

    admin.upload(upload_uri, content[:1000])
    after_one = _file(admin, resource_id)
    admin.upload(upload_uri, content[1000:3000])
    after_two = _file(admin, resource_id)

    assert after_one["progress"] == 25.0
    assert after_two["progress"] == 75.0
    assert after_two["complete"] is False


def test_final_chunk_with_the_wrong_hash_is_rejected_and_discarded(admin: Maas) -> None:
    content = os.urandom(2000)
    resource_id, upload_uri = _start(admin, content)
    admin.upload(upload_uri, content[:1000])

    wrong = admin.upload(upload_uri, content[1000:1999] + b"\x00")
    right = admin.upload(upload_uri, content[1000:])

    assert (wrong.status_code, wrong.text) == (
        400,
        "Saved content does not match given SHA256 value.",
    )
    assert right.status_code == 200
    assert _file(admin, resource_id)["complete"] is True


def test_data_past_the_declared_size_is_too_much(admin: Maas) -> None:
    content = os.urandom(1000)
    resource_id, upload_uri = _start(admin, content)

    response = admin.upload(upload_uri, content + b"extra")

    assert (response.status_code, response.text) == (400, "Too much data received.")
    assert _file(admin, resource_id)["progress"] == 0.0


def test_upload_to_a_complete_file_is_refused(admin: Maas) -> None:
    content = os.urandom(100)
    _, upload_uri = _start(admin, content)
    admin.upload(upload_uri, content)

    response = admin.upload(upload_uri, b"more")

    assert (response.status_code, response.text) == (400, "Cannot upload to a complete file.")


def test_empty_chunk_is_missing_data(admin: Maas) -> None:
    _, upload_uri = _start(admin, os.urandom(100))

    response = admin.upload(upload_uri, b"")

    assert (response.status_code, response.text) == (400, "Missing data.")


def test_chunked_transfer_without_content_length_is_missing_data(admin: Maas) -> None:
    _, upload_uri = _start(admin, os.urandom(100))

    response = admin.upload(upload_uri, iter([b"abc"]))  # type: ignore[arg-type]

    assert (response.status_code, response.text) == (400, "Missing data.")


def test_upload_to_a_synced_resource_is_forbidden(admin: Maas) -> None:
    synced = next(r for r in admin.get("boot-resources/").json() if r["type"] == "Synced")
    _, upload_uri = _start(admin, os.urandom(10))
    file_id = upload_uri.rstrip("/").rsplit("/", 1)[1]

    # MAAS looks the file up by id alone; the type check uses the resource in the URL.
    response = admin.upload(f"/MAAS/api/2.0/boot-resources/{synced['id']}/upload/{file_id}/", b"x")

    assert (response.status_code, response.text) == (403, "Cannot upload to a resource of type: 0.")


def test_unknown_resource_or_file_is_404(admin: Maas) -> None:
    _, upload_uri = _start(admin, os.urandom(10))
    resource_part, file_id = upload_uri.rstrip("/").rsplit("/upload/", 1)

    no_resource = admin.upload(f"/MAAS/api/2.0/boot-resources/9999/upload/{file_id}/", b"x")
    no_file = admin.upload(f"{resource_part}/upload/99999/", b"x")

    assert (no_resource.status_code, no_resource.text) == (
        404,
        "No BootResource matches the given query.",
    )
    assert (no_file.status_code, no_file.text) == (
        404,
        "No BootResourceFile matches the given query.",
    )


def test_upload_handler_takes_only_put(admin: Maas) -> None:
    _, upload_uri = _start(admin, os.urandom(10))

    response = admin.post(upload_uri)

    assert response.status_code == 405
    assert response.headers["allow"] == "PUT"


@pytest.mark.anyio
async def test_content_length_not_matching_the_body_is_refused() -> None:
    # Over a socket the server reads exactly Content-Length bytes, so only an in-process
    # transport can deliver a body that disagrees with its header.
    config = SimulatorConfig(seed=3)
    app = create_simulator(config)
    admin_key = config.resolved_admin_key()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://maas") as client:
        create = await client.post(
            "/MAAS/api/2.0/boot-resources/",
            data={
                "name": "short-image",
                "architecture": "amd64/generic",
                "size": "10",
                "sha256": "e" * 64,
            },
            headers={"Authorization": oauth_header(admin_key)},
        )
        body = create.json()
        (rfile,) = body["sets"][max(body["sets"])]["files"].values()

        response = await client.put(
            rfile["upload_uri"],
            content=b"0123456789",
            headers={"Authorization": oauth_header(admin_key), "Content-Length": "5"},
        )

    assert (response.status_code, response.text) == (
        400,
        "Content-Length doesn't equal size of received data.",
    )
