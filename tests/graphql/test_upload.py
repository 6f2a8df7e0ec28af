"""uploadBootResource over the GraphQL multipart request spec, CSRF-safe, through the service."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import maas_call

UPLOAD = """
mutation($file: Upload!, $input: UploadBootResourceInput!) {
  uploadBootResource(file: $file, input: $input) {
    bootResource { id name type architecture { arch subarch } complete
                   sets { label complete files { size sha256 complete } } }
    errors { code field message }
  }
}
"""


def upload(
    url: str, content: bytes, *, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    operations = {
        "query": UPLOAD,
        "variables": {
            "file": None,
            "input": {"name": "custom/alma9", "architecture": "amd64/generic", **fields},
        },
    }
    return httpx.post(
        f"{url}/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("root.tgz", content, "application/octet-stream")},
        headers=headers if headers is not None else {"Apollo-Require-Preflight": "true"},
        timeout=60,
    )


def test_upload_creates_a_complete_resource(
    start_gateway: Any, simulator: BackgroundServer
) -> None:
    gateway = start_gateway(upload_chunk_size=64 * 1024)
    content = os.urandom(300 * 1024 + 17)
    response = upload(gateway.url, content, title="Alma 9")
    body = response.json()
    assert "errors" not in body, body
    result = body["data"]["uploadBootResource"]
    assert result["errors"] == []
    resource = result["bootResource"]
    assert resource["type"] == "UPLOADED"
    assert resource["complete"] is True
    file = resource["sets"][0]["files"][0]
    assert file == {
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "complete": True,
    }
    upstream = maas_call(
        simulator.url, ADMIN_KEY, lambda maas: maas.get_boot_resource(int(resource["id"]))
    )
    newest = upstream.sets[max(upstream.sets)]  # type: ignore[index]
    assert newest.complete


def test_upload_without_preflight_header_is_refused(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    before = maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_resources())
    response = upload(gateway.url, b"x" * 1000, headers={})
    assert response.status_code == 400
    assert "Apollo-Require-Preflight" in response.text
    after = maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_resources())
    assert len(after) == len(before)


def test_upload_with_a_wrong_declared_sha256_is_a_user_error(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    before = maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_resources())
    body = upload(gateway.url, b"abc" * 1000, sha256="0" * 64).json()
    result = body["data"]["uploadBootResource"]
    assert result["bootResource"] is None
    assert result["errors"][0]["field"] == "sha256"
    after = maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_resources())
    assert len(after) == len(before)


def test_upload_to_an_unusable_architecture_gets_maas_field_message(
    gateway: BackgroundServer,
) -> None:
    body = upload(gateway.url, b"abc" * 1000, architecture="sparc/generic").json()
    result = body["data"]["uploadBootResource"]
    assert result["bootResource"] is None
    assert result["errors"][0]["field"] == "architecture"
    assert "is not a valid architecture" in result["errors"][0]["message"]
