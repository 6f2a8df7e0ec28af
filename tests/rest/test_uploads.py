"""Streaming custom-image uploads through REST: happy paths; no failure leaves anything behind."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import socket
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from app.cli.server import BackgroundServer
from app.rest import uploads
from tests.conftest import ADMIN_KEY, USER_KEY
from tests.gateway import maas_call, reset_counts, set_faults, upstream_counts
from tests.rest.conftest import GatewayFactory, envelope, wait_for

MiB = 1024 * 1024


def image(size: int = 2 * MiB) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, hashlib.sha256(data).hexdigest()


def fresh_name() -> str:
    return f"resttest-{uuid.uuid4().hex[:10]}"


def params(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "architecture": "amd64/generic", "title": "REST test", **extra}


def pieces(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    """A generator body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def resources_named(simulator: BackgroundServer, name: str) -> list[Any]:
    listed = maas_call(simulator.url, ADMIN_KEY, lambda maas: maas.list_boot_resources())
    return [r for r in listed if r.name == name]


def calls(simulator: BackgroundServer, method: str, fragment: str) -> int:
    return sum(
        n
        for key, n in upstream_counts(simulator.url).items()
        if key.startswith(f"{method} ") and fragment in key
    )


def assert_nothing_left(simulator: BackgroundServer, name: str, timeout: float = 5.0) -> None:
    """The upload did create a resource upstream, and it is gone again."""
    assert calls(simulator, "POST", "/boot-resources/") >= 1, "the upload never reached MAAS"
    deadline = time.monotonic() + timeout
    while resources_named(simulator, name):
        assert time.monotonic() < deadline, f"half-made resource {name} left in MAAS"
        time.sleep(0.05)


def assert_complete(resource: dict[str, Any], name: str, size: int, sha256: str) -> None:
    assert resource["name"] == name
    assert resource["type"] == "uploaded"
    assert resource["architecture"] == "amd64/generic"
    assert resource["complete"] is True
    newest = resource["sets"][0]
    assert newest["complete"] is True
    assert newest["size"] == size
    [file] = newest["files"]
    assert (file["sha256"], file["size"], file["complete"]) == (sha256, size, True)
    assert "upload_uri" not in str(resource)


def test_upload_streams_when_size_and_sha256_are_declared(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    data, sha256 = image()
    name = fresh_name()
    response = api.post(
        "/boot-resources",
        params=params(name, size=len(data), sha256=sha256),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    resource = response.json()
    assert_complete(resource, name, len(data), sha256)
    assert response.headers["location"] == f"/api/v1/boot-resources/{resource['id']}"
    assert calls(simulator, "PUT", "/upload/") >= len(data) // (64 * 1024)
    again = api.get(f"/boot-resources/{resource['id']}").json()
    assert_complete(again, name, len(data), sha256)
    listed = api.get("/boot-resources", params={"type": "uploaded"}).json()
    assert resource["id"] in {r["id"] for r in listed}


def test_upload_streams_with_length_and_sha256_headers(api: httpx.Client) -> None:
    data, sha256 = image(MiB)
    name = fresh_name()
    response = api.post(
        "/boot-resources",
        params=params(name, filetype="ddtgz"),
        content=data,
        headers={"X-Content-SHA256": sha256.upper()},
    )
    assert response.status_code == 201, response.text
    assert_complete(response.json(), name, len(data), sha256)


def test_reuploading_identical_content_sends_it_again_from_3_5(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    """From 3.5 MAAS stores every file apart, so known content is uploaded again (maas-api.md
    §0; up to 3.4 it skipped it, which tests/maas/test_maas_upload.py covers)."""
    data, sha256 = image()
    name = fresh_name()
    query = params(name, size=len(data), sha256=sha256)
    assert api.post("/boot-resources", params=query, content=data).status_code == 201
    chunk_puts = calls(simulator, "PUT", "/upload/")
    again = api.post("/boot-resources", params=query, content=pieces(data, 64 * 1024))
    assert again.status_code == 201, again.text
    assert_complete(again.json(), name, len(data), sha256)
    assert calls(simulator, "PUT", "/upload/") == 2 * chunk_puts, "sent again, in full"


def test_upload_spools_a_body_of_unknown_size_and_hash(api: httpx.Client) -> None:
    data, sha256 = image()
    name = fresh_name()
    response = api.post("/boot-resources", params=params(name), content=pieces(data))
    assert response.status_code == 201, response.text
    assert_complete(response.json(), name, len(data), sha256)


def test_upload_spools_and_checks_a_declared_sha256(api: httpx.Client) -> None:
    data, sha256 = image(MiB)
    name = fresh_name()
    response = api.post("/boot-resources", params=params(name, sha256=sha256), content=pieces(data))
    assert response.status_code == 201, response.text
    assert_complete(response.json(), name, len(data), sha256)


def test_streamed_upload_reaches_maas_before_the_body_ends(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    data, sha256 = image()
    name = fresh_name()
    with RawUpload(gateway, params(name, size=len(data), sha256=sha256), len(data)) as raw:
        raw.send(data[: len(data) // 2])
        wait_for(lambda: calls(simulator, "PUT", "/upload/") >= 4)
        raw.send(data[len(data) // 2 :])
        status, body = raw.response()
    assert status == 201, body
    assert resources_named(simulator, name)


def test_spooled_upload_touches_maas_only_after_the_whole_body(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    data, _ = image()
    name = fresh_name()
    reset_counts(simulator.url)
    with RawUpload(gateway, params(name), len(data)) as raw:
        raw.send(data[: len(data) // 2])
        time.sleep(0.3)
        assert upstream_counts(simulator.url) == {}
        raw.send(data[len(data) // 2 :])
        status, body = raw.response()
    assert status == 201, body


@pytest.mark.parametrize("spooled", [False, True])
def test_upload_with_a_wrong_sha256_fails_and_leaves_nothing(
    api: httpx.Client, simulator: BackgroundServer, spooled: bool
) -> None:
    data, _ = image()
    name = fresh_name()
    wrong = hashlib.sha256(b"something else").hexdigest()
    reset_counts(simulator.url)
    if spooled:
        response = api.post(
            "/boot-resources", params=params(name, sha256=wrong), content=pieces(data)
        )
    else:
        response = api.post(
            "/boot-resources", params=params(name, size=len(data), sha256=wrong), content=data
        )
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert "sha256" in error["details"]["fields"]
    if spooled:
        assert upstream_counts(simulator.url) == {}, "checked before MAAS is touched"
    else:
        assert_nothing_left(simulator, name)
    assert not resources_named(simulator, name)


@pytest.mark.parametrize("declared_delta", [1000, -1000])
def test_upload_with_a_wrong_declared_size_fails_and_leaves_nothing(
    api: httpx.Client, simulator: BackgroundServer, declared_delta: int
) -> None:
    """The body is shorter (+delta) or longer (-delta) than the size in the query.

    Chunked, so no Content-Length gives it away early: the gateway streams and only the
    bytes tell (a Content-Length body cannot end early without the client hanging up).
    """
    data, sha256 = image()
    name = fresh_name()
    response = api.post(
        "/boot-resources",
        params=params(name, size=len(data) + declared_delta, sha256=sha256),
        content=pieces(data),
    )
    assert response.status_code == 400, response.text
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert "size" in error["details"]["fields"]
    assert_nothing_left(simulator, name)


def test_upload_whose_length_disagrees_with_size_is_refused_at_once(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    data, sha256 = image(MiB)
    reset_counts(simulator.url)
    response = api.post(
        "/boot-resources",
        params=params(fresh_name(), size=len(data) + 1, sha256=sha256),
        content=data,
    )
    assert response.status_code == 400
    assert "size" in envelope(response)["details"]["fields"]
    assert upstream_counts(simulator.url) == {}


def test_client_disconnect_mid_upload_deletes_the_half_made_resource(
    gateway: BackgroundServer, simulator: BackgroundServer
) -> None:
    data, sha256 = image(4 * MiB)
    name = fresh_name()
    with RawUpload(gateway, params(name, size=len(data), sha256=sha256), len(data)) as raw:
        raw.send(data[: len(data) // 2])
        wait_for(lambda: bool(resources_named(simulator, name)))
        wait_for(lambda: calls(simulator, "PUT", "/upload/") >= 4)
    # Closed with half the body sent: the gateway must notice and clean up.
    wait_for(lambda: calls(simulator, "DELETE", "/boot-resources/") >= 1)
    assert_nothing_left(simulator, name)


def test_maas_dropping_the_connection_mid_upload_is_502_and_leaves_nothing(
    api: httpx.Client, simulator: BackgroundServer
) -> None:
    data, sha256 = image()
    name = fresh_name()
    set_faults(
        simulator.url,
        {"path": "/upload/", "method": "PUT", "drop_after_bytes": 1000, "times": 1},
    )
    response = api.post(
        "/boot-resources", params=params(name, size=len(data), sha256=sha256), content=data
    )
    assert response.status_code == 502, response.text
    assert envelope(response)["code"] == "UPSTREAM_BAD_RESPONSE"
    assert_nothing_left(simulator, name)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(500, "UPSTREAM_BAD_RESPONSE", 502), (503, "UPSTREAM_UNAVAILABLE", 503)],
)
def test_maas_failing_a_chunk_fails_the_upload_and_leaves_nothing(
    api: httpx.Client, simulator: BackgroundServer, status: int, code: str, expected: int
) -> None:
    data, sha256 = image()
    name = fresh_name()
    set_faults(simulator.url, {"path": "/upload/", "method": "PUT", "status": status})
    response = api.post(
        "/boot-resources", params=params(name, size=len(data), sha256=sha256), content=data
    )
    assert response.status_code == expected, response.text
    assert envelope(response)["code"] == code
    assert_nothing_left(simulator, name)


@pytest.mark.parametrize(
    "bad",
    [
        {"filetype": "zip"},
        {"architecture": "amd64"},
        {"name": "has space"},
        {"name": ""},
        {"sha256": "abc"},
        {"size": 0},
        {"size": "lots"},
        {"base_image": "jammy"},
    ],
)
def test_invalid_upload_parameters_are_rejected_before_maas(
    api: httpx.Client, simulator: BackgroundServer, bad: dict[str, Any]
) -> None:
    data, _ = image(64 * 1024)
    reset_counts(simulator.url)
    response = api.post("/boot-resources", params=params(fresh_name()) | bad, content=data)
    assert response.status_code == 400, response.text
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert set(error["details"]["fields"]) == set(bad)
    assert upstream_counts(simulator.url) == {}


def test_an_empty_upload_is_rejected(api: httpx.Client, simulator: BackgroundServer) -> None:
    reset_counts(simulator.url)
    response = api.post("/boot-resources", params=params(fresh_name()), content=b"")
    assert response.status_code == 400
    assert envelope(response)["code"] == "VALIDATION"
    assert upstream_counts(simulator.url) == {}


def test_maas_rejecting_the_upload_is_400_with_its_field_messages(api: httpx.Client) -> None:
    data, sha256 = image(64 * 1024)
    response = api.post(
        "/boot-resources",
        params=params(fresh_name(), architecture="sparc/generic", sha256=sha256),
        content=data,
    )
    assert response.status_code == 400
    error = envelope(response)
    assert error["code"] == "VALIDATION"
    assert "architecture" in error["details"]["fields"]


@pytest.mark.parametrize("declared", [True, False])
def test_an_upload_over_the_limit_is_413(
    start_gateway: GatewayFactory, simulator: BackgroundServer, declared: bool
) -> None:
    gateway = start_gateway(max_upload_bytes=256 * 1024)
    data, sha256 = image(512 * 1024)
    reset_counts(simulator.url)
    with httpx.Client(base_url=f"{gateway.url}/api/v1", timeout=30.0) as api:
        if declared:
            response = api.post(
                "/boot-resources",
                params=params(fresh_name(), size=len(data), sha256=sha256),
                content=data,
            )
        else:
            response = api.post(
                "/boot-resources", params=params(fresh_name()), content=pieces(data)
            )
    assert response.status_code == 413
    error = envelope(response)
    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert error["details"]["limit"] == 256 * 1024
    assert upstream_counts(simulator.url) == {}


def test_a_refused_upload_does_not_invite_a_body_awaiting_100_continue(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(max_upload_bytes=MiB)
    query = params(fresh_name(), size=2 * MiB, sha256="0" * 64)
    with RawUpload(gateway, query, 2 * MiB, extra="Expect: 100-continue\r\n") as raw:
        assert raw.status_line() == b"HTTP/1.1 413 Request Entity Too Large"


def test_a_non_admin_cannot_upload(start_gateway, simulator: BackgroundServer) -> None:
    gateway = start_gateway(api_key=USER_KEY)
    data, sha256 = image(64 * 1024)
    name = fresh_name()
    response = httpx.post(
        f"{gateway.url}/api/v1/boot-resources",
        params=params(name, size=len(data), sha256=sha256),
        content=data,
    )
    assert response.status_code == 403
    assert envelope(response)["code"] == "FORBIDDEN"
    assert not resources_named(simulator, name)


def test_an_upload_that_cannot_be_spooled_says_to_declare_size_and_sha256(
    api: httpx.Client, simulator: BackgroundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads.tempfile, "TemporaryFile", disk_full)
    data, _ = image(64 * 1024)
    reset_counts(simulator.url)
    response = api.post("/boot-resources", params=params(fresh_name()), content=data)
    assert response.status_code == 413
    error = envelope(response)
    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert "declare both" in error["message"]
    assert upstream_counts(simulator.url) == {}


class RawUpload:
    """An upload over a raw socket, so a test controls when bytes go and when it hangs up."""

    def __init__(
        self, gateway: BackgroundServer, query: dict[str, Any], length: int, *, extra: str = ""
    ) -> None:
        self._sock = socket.create_connection((gateway.host, gateway.port), timeout=10)
        head = (
            f"POST /api/v1/boot-resources?{urlencode(query)} HTTP/1.1\r\n"
            f"Host: {gateway.host}:{gateway.port}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\n"
            f"{extra}"
            "Connection: close\r\n\r\n"
        )
        self._sock.sendall(head.encode())

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def status_line(self) -> bytes:
        received = b""
        while b"\r\n" not in received:
            received += self._sock.recv(1)
        return received.strip()

    def response(self) -> tuple[int, bytes]:
        received = b""
        while chunk := self._sock.recv(65536):
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body

    def __enter__(self) -> RawUpload:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


@pytest.mark.parametrize("spooled", [False, True])
def test_uploads_keep_memory_flat(start_gateway, spooled: bool) -> None:
    """16 MiB through the gateway (same process, traced) while holding about one chunk."""
    gateway = start_gateway(upload_chunk_size=MiB)
    total, piece = 16 * MiB, 256 * 1024

    def body() -> Iterator[bytes]:
        rng = random.Random(7)
        for _ in range(total // piece):
            yield rng.randbytes(piece)

    sha256 = hashlib.sha256(b"".join(body())).hexdigest()
    query = params(fresh_name(), sha256=sha256) | ({} if spooled else {"size": total})
    tracemalloc.start()
    try:
        response = httpx.post(
            f"{gateway.url}/api/v1/boot-resources", params=query, content=body(), timeout=30
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB for a {total // MiB} MiB upload"
