"""`app.cli.upload` end to end: a file through a running gateway into the simulator."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import upload as uploader
from app.cli.server import BackgroundServer
from app.cli.upload import UploadFailed, file_digest, progress_bar, upload_file
from tests.conftest import ADMIN_KEY
from tests.gateway import maas_call, set_faults
from tests.rest.conftest import wait_for

MiB = 1024 * 1024


def maas_resources(simulator: BackgroundServer) -> list[Any]:
    return maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_resources())


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "root.tgz"
    path.write_bytes(os.urandom(3 * MiB + 123))
    return path


def test_file_digest_reads_size_and_sha256(image_file: Path) -> None:
    data = image_file.read_bytes()
    assert file_digest(image_file, block_size=1000) == (len(data), hashlib.sha256(data).hexdigest())


def test_upload_file_streams_a_file_and_reports_progress(
    gateway: BackgroundServer, image_file: Path
) -> None:
    data = image_file.read_bytes()
    name = f"uploader-{uuid.uuid4().hex[:8]}"
    seen: list[tuple[int, int]] = []
    resource = upload_file(
        gateway.url,
        image_file,
        name=name,
        architecture="amd64/generic",
        title="Uploader test",
        filetype="tgz",
        chunk_size=256 * 1024,
        progress=lambda sent, total: seen.append((sent, total)),
    )
    assert resource["name"] == name
    assert resource["title"] == "Uploader test"
    assert resource["complete"] is True
    [file] = resource["sets"][0]["files"]
    assert (file["size"], file["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert seen[0] == (0, len(data))
    assert seen[-1] == (len(data), len(data))
    assert [sent for sent, _ in seen] == sorted(sent for sent, _ in seen)
    assert len(seen) == 1 + -(-len(data) // (256 * 1024))


def test_upload_file_raises_with_the_gateways_error_envelope(
    gateway: BackgroundServer, simulator: BackgroundServer, image_file: Path
) -> None:
    name = f"uploader-{uuid.uuid4().hex[:8]}"
    set_faults(simulator.url, {"path": "/upload/", "method": "PUT", "status": 500})
    with pytest.raises(UploadFailed) as caught:
        upload_file(gateway.url, image_file, name=name, architecture="amd64/generic")
    failure = caught.value
    assert (failure.status, failure.code) == (502, "UPSTREAM_BAD_RESPONSE")
    assert failure.error == {
        "code": failure.code,
        "message": failure.message,
        "details": failure.details,
    }
    assert "HTTP 502 UPSTREAM_BAD_RESPONSE" in str(failure)
    assert name not in {r.name for r in maas_resources(simulator)}


def test_upload_file_raises_field_errors_for_bad_parameters(
    gateway: BackgroundServer, image_file: Path
) -> None:
    with pytest.raises(UploadFailed) as caught:
        upload_file(gateway.url, image_file, name="x", architecture="amd64", filetype="zip")
    assert caught.value.status == 400
    assert caught.value.code == "VALIDATION"
    assert set(caught.value.details["fields"]) == {"architecture", "filetype"}


def test_upload_file_stops_when_the_file_shrinks_during_the_upload(
    gateway: BackgroundServer,
    simulator: BackgroundServer,
    image_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    size, sha256 = file_digest(image_file)
    monkeypatch.setattr(uploader, "file_digest", lambda *a, **k: (size + 4096, sha256))
    name = f"uploader-{uuid.uuid4().hex[:8]}"
    with pytest.raises(UploadFailed) as caught:
        upload_file(gateway.url, image_file, name=name, architecture="amd64/generic")
    assert caught.value.code == "FILE_CHANGED"
    assert caught.value.status is None
    wait_for(lambda: name not in {r.name for r in maas_resources(simulator)})


def test_upload_file_raises_when_the_gateway_is_unreachable(image_file: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(UploadFailed) as caught:
        upload_file(
            "http://gateway.invalid",
            image_file,
            name="x",
            architecture="amd64/generic",
            transport=httpx.MockTransport(refuse),
        )
    assert caught.value.status is None
    assert caught.value.code == "GATEWAY_UNREACHABLE"


def test_upload_file_raises_for_an_answer_that_is_not_an_envelope(image_file: Path) -> None:
    def proxy_error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    with pytest.raises(UploadFailed) as caught:
        upload_file(
            "http://gateway.test",
            image_file,
            name="x",
            architecture="amd64/generic",
            transport=httpx.MockTransport(proxy_error),
        )
    assert (caught.value.status, caught.value.code) == (502, "HTTP_502")


def test_progress_bar_draws_in_place_and_ends_the_line() -> None:
    out = io.StringIO()
    draw = progress_bar("root.tgz", stream=out, width=10, interval=0)
    draw(0, 4 * MiB)
    draw(2 * MiB, 4 * MiB)
    draw(4 * MiB, 4 * MiB)
    lines = out.getvalue().split("\r")[1:]
    assert lines[0].startswith("root.tgz [----------]   0.0% 0 B/4.0 MiB")
    assert lines[1].startswith("root.tgz [#####-----]  50.0% 2.0 MiB/4.0 MiB")
    assert lines[2] == "root.tgz [##########] 100.0% 4.0 MiB/4.0 MiB\n"
