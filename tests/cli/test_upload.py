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


def test_progress_bar_shows_bytes_rate_and_time_left() -> None:
    out = io.StringIO()
    draw = progress_bar("root.tgz", stream=out)
    draw(0, 4 * MiB)
    draw(2 * MiB, 4 * MiB)
    draw(4 * MiB, 4 * MiB)
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("root.tgz: 100%") and "4.00M/4.00M" in last, last
    assert "B/s" in last  # the rate
    assert out.getvalue().endswith("\n")  # the bar is closed, its line ended


def test_the_token_comes_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli.main import build_parser
    from app.cli.reporting import resolve_token

    parse = build_parser().parse_args
    monkeypatch.setenv("MAAS_GATEWAY_TOKEN", "from-env")
    assert resolve_token(parse(["upload", "f", "--name", "n", "--architecture", "a"])) == "from-env"
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    args = parse(
        ["upload", "f", "--name", "n", "--architecture", "a", "--token-file", str(token_file)]
    )
    assert resolve_token(args) == "from-file"
    args = parse(["upload", "f", "--name", "n", "--architecture", "a", "--token", "given"])
    assert resolve_token(args) == "given"


def test_ctrl_c_says_what_was_cleaned_up_and_exits_130(
    image_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    def interrupted(*_: Any, **__: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(uploader, "upload_file", interrupted)
    code = main(
        ["upload", str(image_file), "--name", "custom/x", "--architecture", "amd64/generic"]
    )
    assert code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted: upload stopped; the gateway removes the half-made resource"]


def test_help_shows_the_defaults_and_version_prints(capsys: pytest.CaptureFixture[str]) -> None:
    from app import __version__
    from app.cli.main import main

    with pytest.raises(SystemExit):
        main(["upload", "--help"])
    assert "(default: tgz)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"maas-gateway {__version__}"
