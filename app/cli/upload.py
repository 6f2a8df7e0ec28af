"""`maas-gateway upload`: hash a file, then stream it to the gateway's REST API."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import httpx
import orjson
from tqdm import tqdm

from app.cli.reporting import add_token_options, fail, resolve_token

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
UPLOAD_PATH = "/api/v1/boot-resources"

Progress = Callable[[int, int], None]
"""Called with (bytes sent, total bytes) as the upload advances."""


class UploadFailed(Exception):
    """The gateway refused or failed the upload; `error` is its envelope's `error` object.

    `status` is None when no answer came back (gateway unreachable, connection dropped).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "UPLOAD_FAILED",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details: dict[str, Any] = dict(details or {})

    @property
    def error(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


def file_digest(
    path: str | Path, *, block_size: int = DEFAULT_CHUNK_SIZE, progress: Progress | None = None
) -> tuple[int, str]:
    """The size and SHA-256 hex digest of a file, read once in blocks."""
    digest = hashlib.sha256()
    size = 0
    total = Path(path).stat().st_size
    with open(path, "rb") as file:
        while block := file.read(block_size):
            digest.update(block)
            size += len(block)
            if progress is not None:
                progress(size, max(total, size))
    if progress is not None:
        progress(size, size)
    return size, digest.hexdigest()


def _blocks(path: Path, size: int, chunk_size: int, progress: Progress | None) -> Iterator[bytes]:
    sent = 0
    if progress is not None:
        progress(0, size)
    with open(path, "rb") as file:
        while sent < size and (block := file.read(min(chunk_size, size - sent))):
            yield block
            sent += len(block)
            if progress is not None:
                progress(sent, size)
        if sent != size:
            # Shrunk since it was hashed: hanging up makes the gateway drop the half-made image.
            # (Bytes appended since are simply not sent: the hashed prefix is what uploads.)
            raise UploadFailed(f"{path} changed while it was being uploaded", code="FILE_CHANGED")


def _failure(response: httpx.Response) -> UploadFailed:
    try:
        body = orjson.loads(response.content)
        error = body["error"]
        return UploadFailed(
            str(error["message"]),
            status=response.status_code,
            code=str(error["code"]),
            details=error.get("details") or {},
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return UploadFailed(text, status=response.status_code, code=f"HTTP_{response.status_code}")


def upload_file(
    gateway_url: str,
    path: str | Path,
    *,
    name: str,
    architecture: str,
    title: str | None = None,
    filetype: str = "tgz",
    base_image: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    hashing: Progress | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Upload a custom image through the gateway and return the new resource (with its sets).

    The file is read twice in `chunk_size` blocks, never whole: once for its size and sha256,
    then to stream it with both declared, so the gateway can pass it to MAAS as it arrives.
    Raises UploadFailed with the gateway's error (code, message, details) on any failure.
    """
    path = Path(path)
    size, sha256 = file_digest(path, block_size=chunk_size, progress=hashing)
    params = _upload_params(name, architecture, filetype, title, base_image, size, sha256)
    request_headers = {
        **(headers or {}),
        "Content-Type": "application/octet-stream",
        # An explicit length keeps httpx from switching to chunked encoding for a generator.
        "Content-Length": str(size),
        "X-Content-SHA256": sha256,
    }
    # Waiting for the answer can take a while after the last byte: MAAS gets the final chunk.
    limits = httpx.Timeout(timeout, connect=min(timeout, 10.0))
    url = gateway_url.rstrip("/") + UPLOAD_PATH
    try:
        with httpx.Client(timeout=limits, transport=transport) as client:
            response = client.post(
                url,
                params=params,
                headers=request_headers,
                content=_blocks(path, size, chunk_size, progress),
            )
    except httpx.HTTPError as error:
        raise UploadFailed(
            f"no answer from the gateway at {gateway_url}: {type(error).__name__}: {error}",
            code="GATEWAY_UNREACHABLE",
        ) from error
    if response.status_code != 201:
        raise _failure(response)
    result: dict[str, Any] = orjson.loads(response.content)
    return result


def _upload_params(
    name: str,
    architecture: str,
    filetype: str,
    title: str | None,
    base_image: str | None,
    size: int,
    sha256: str,
) -> dict[str, str]:
    params = {
        "name": name,
        "architecture": architecture,
        "filetype": filetype,
        "size": str(size),
        "sha256": sha256,
    }
    if title is not None:
        params["title"] = title
    if base_image is not None:
        params["base_image"] = base_image
    return params


def progress_bar(label: str = "", *, stream: TextIO | None = None) -> Progress:
    """A tqdm bar on stderr: bytes done, rate and time left."""
    bar: tqdm[Any] | None = None

    def draw(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(
                total=total,
                desc=label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=stream if stream is not None else sys.stderr,
                mininterval=0.1,
                dynamic_ncols=True,
            )
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return draw


def register(commands: Any) -> None:
    upload = commands.add_parser(
        "upload",
        help="stream a custom image to MAAS through the gateway's REST API",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    upload.add_argument("file", help="the image file (e.g. a root tarball)")
    upload.add_argument("--name", required=True, help="boot resource name, e.g. custom/alma9")
    upload.add_argument("--architecture", required=True, help="arch/subarch, e.g. amd64/generic")
    upload.add_argument("--title", help="title shown in MAAS")
    upload.add_argument("--filetype", default="tgz", help="MAAS upload type (tgz, ddraw, ...)")
    upload.add_argument("--base-image", help="os/series the custom image is based on")
    upload.add_argument("--gateway", default="http://127.0.0.1:8000", help="the gateway's base URL")
    add_token_options(upload)
    upload.add_argument("--quiet", action="store_true", help="no progress bar")
    upload.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        return fail(f"{path}: no such file")
    try:
        token = resolve_token(args)
    except OSError as error:
        return fail(f"{args.token_file}: {error.strerror}")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        resource = upload_file(
            args.gateway,
            path,
            name=args.name,
            architecture=args.architecture,
            title=args.title,
            filetype=args.filetype,
            base_image=args.base_image,
            progress=None if args.quiet else progress_bar(f"upload {path.name}"),
            hashing=None if args.quiet else progress_bar(f"sha256 {path.name}"),
            headers=headers,
        )
    except KeyboardInterrupt:
        # Hanging up mid-stream makes the gateway delete the half-made resource in MAAS.
        print(
            "\ninterrupted: upload stopped; the gateway removes the half-made resource",
            file=sys.stderr,
        )
        return 130
    except UploadFailed as error:
        return fail(f"upload failed: {error}")
    except OSError as error:
        return fail(f"{path}: {error.strerror}")
    print(
        f"uploaded boot resource {resource['id']} ({resource['name']} {resource['architecture']})"
    )
    return 0
