"""Custom-image uploads: the raw request body streamed (or spooled, then streamed) to MAAS."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import IO, Literal, get_args

import anyio
from starlette.requests import ClientDisconnect, Request

from app.core.errors import PayloadTooLarge, ValidationFailed
from app.core.models import BootResource
from app.core.settings import Settings
from app.http.cors import CONTENT_SHA256_HEADER
from app.service import BootService, Caller

# A client that sends nothing for this long is given up on (and its half-made resource deleted).
BODY_IDLE_TIMEOUT = 120.0
# After a failure, this much of the unread body is read and dropped so that the client, still
# sending, gets the error response instead of a reset connection.
DRAIN_MAX_BYTES = 32 * 1024 * 1024
DRAIN_TIMEOUT = 5.0

# MAAS's upload file types (maas-api.md §5.4, BOOT_RESOURCE_FILE_TYPE_CHOICES_UPLOAD).
Filetype = Literal[
    "tgz", "tbz", "txz", "ddtgz", "ddtbz", "ddtxz", "ddtar", "ddbz2", "ddgz", "ddxz", "ddraw"
]
UPLOAD_FILETYPES: tuple[str, ...] = get_args(Filetype)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*(/[A-Za-z0-9][A-Za-z0-9._+-]*)?$"
ARCHITECTURE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*/[A-Za-z0-9][A-Za-z0-9._+-]*$"
BASE_IMAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*/[A-Za-z0-9][A-Za-z0-9._+-]*$"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
SHA256_HEADER = CONTENT_SHA256_HEADER.lower()
_SHA256 = re.compile(SHA256_PATTERN)


@dataclass(frozen=True, slots=True)
class UploadMeta:
    name: str
    architecture: str
    filetype: str
    title: str | None = None
    base_image: str | None = None
    size: int | None = None
    sha256: str | None = None


def _mismatch(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, fields={field: [message]})


def _declared_size(request: Request, meta: UploadMeta) -> int | None:
    raw = request.headers.get("content-length")
    length = None
    if raw is not None:
        if not raw.isdigit():
            raise _mismatch("Content-Length", "Content-Length must be a number of bytes")
        length = int(raw)
    if meta.size is not None and length is not None and meta.size != length:
        raise _mismatch("size", f"size={meta.size} but the body is {length} bytes")
    return meta.size if meta.size is not None else length


def _declared_sha256(request: Request, meta: UploadMeta) -> str | None:
    header = request.headers.get(SHA256_HEADER)
    if header is not None and not _SHA256.match(header.strip()):
        raise _mismatch(SHA256_HEADER, "X-Content-SHA256 must be 64 hex digits")
    header = header.strip().lower() if header is not None else None
    query = meta.sha256.lower() if meta.sha256 is not None else None
    if query is not None and header is not None and query != header:
        raise _mismatch("sha256", "the sha256 parameter and X-Content-SHA256 differ")
    return query or header


async def _pieces(request: Request) -> AsyncGenerator[bytes, None]:
    """The body as it arrives; a client gone or silent for too long is an error."""
    async with contextlib.aclosing(request.stream()) as stream:
        while True:
            try:
                async with asyncio.timeout(BODY_IDLE_TIMEOUT):
                    piece = await anext(stream)
            except StopAsyncIteration:
                return
            except ClientDisconnect:
                raise ValidationFailed(
                    "the client disconnected before sending the whole image"
                ) from None
            except TimeoutError:
                raise ValidationFailed(
                    f"the client sent nothing for {BODY_IDLE_TIMEOUT:g} s; upload abandoned"
                ) from None
            if piece:
                yield piece


def _cannot_spool(error: OSError) -> PayloadTooLarge:
    # Typically a full or read-only temp dir: streaming needs no disk at all.
    return PayloadTooLarge(
        f"the gateway cannot hold the image to learn its size and sha256 ({error.strerror}): "
        "declare both (size and sha256) so that it streams instead",
        details={"spool_error": error.strerror or type(error).__name__},
    )


@dataclass(slots=True)
class _Spooled:
    file: anyio.AsyncFile[bytes]
    size: int
    sha256: str


async def _spool(
    pieces: AsyncIterator[bytes], *, size: int | None, sha256: str | None, limit: int, block: int
) -> _Spooled:
    """Copy the body to an anonymous temporary file, hashing it; memory stays at one block."""
    try:
        raw: IO[bytes] = await anyio.to_thread.run_sync(tempfile.TemporaryFile)
    except OSError as error:
        raise _cannot_spool(error) from error
    file = anyio.wrap_file(raw)

    async def write(data: bytearray) -> None:
        try:
            await file.write(data)
        except OSError as error:
            raise _cannot_spool(error) from error

    try:
        digest = hashlib.sha256()
        received = 0
        buffer = bytearray()
        async for piece in pieces:
            received += len(piece)
            if received > limit:
                raise PayloadTooLarge(
                    f"the image is larger than the limit of {limit} bytes",
                    details={"limit": limit},
                )
            if size is not None and received > size:
                raise _mismatch(
                    "size", f"the body is longer than the declared size of {size} bytes"
                )
            digest.update(piece)
            buffer += piece
            if len(buffer) >= block:
                await write(buffer)
                buffer.clear()
        if buffer:
            await write(buffer)
        if received == 0:
            raise _mismatch("body", "the image is empty")
        if size is not None and received != size:
            raise _mismatch("size", f"the body ended after {received} of the declared {size} bytes")
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256:
            raise _mismatch("sha256", "the body does not match the declared sha256")
        await file.seek(0)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await file.aclose()
        raise
    return _Spooled(file, received, actual)


async def _read_blocks(file: anyio.AsyncFile[bytes], block: int) -> AsyncGenerator[bytes, None]:
    while data := await file.read(block):
        yield data


async def _drain(request: Request, *, max_bytes: int) -> None:
    """Read and drop what is left of the body, at most `max_bytes` of it."""
    with contextlib.suppress(Exception):
        drained = 0
        async with contextlib.aclosing(_pieces(request)) as rest:
            async for piece in rest:
                drained += len(piece)
                if drained > max_bytes:
                    return


def _declared(request: Request, meta: UploadMeta, limit: int) -> tuple[int | None, str | None]:
    """The size and sha256 the client declared, checked against the limit before any byte is
    read."""
    size = _declared_size(request, meta)
    sha256 = _declared_sha256(request, meta)
    if size is not None and size > limit:
        raise PayloadTooLarge(
            f"the image of {size} bytes is larger than the limit of {limit} bytes",
            details={"limit": limit, "size": size},
        )
    if size == 0:
        raise _mismatch("size", "the image is empty")
    return size, sha256


async def receive_upload(
    request: Request,
    service: BootService,
    caller: Caller,
    meta: UploadMeta,
    settings: Settings,
) -> BootResource:
    """Upload the request body as a custom image and return the resource (with its sets).

    With both size and sha256 declared the body streams to MAAS as it arrives; otherwise it is
    spooled to a temporary file first, so the create call can carry them (maas-api.md §5.5).
    On any failure MAAS's client deletes the half-made resource.
    """
    limit = settings.max_upload_bytes

    async def upload(content: AsyncIterator[bytes], size: int, sha256: str) -> BootResource:
        return await service.upload_boot_resource(
            caller,
            name=meta.name,
            architecture=meta.architecture,
            content=content,
            size=size,
            sha256=sha256,
            title=meta.title,
            filetype=meta.filetype,
            base_image=meta.base_image,
        )

    reading = succeeded = False
    try:
        size, sha256 = _declared(request, meta, limit)
        block = settings.upload_chunk_size
        reading = True
        async with contextlib.aclosing(_pieces(request)) as body:
            if size is not None and sha256 is not None:
                # MAAS's client checks size and sha256 as the bytes pass, and holds back the
                # chunk that would complete the file until both match.
                resource = await upload(body, size, sha256)
                succeeded = True
                return resource
            spooled = await _spool(body, size=size, sha256=sha256, limit=limit, block=block)
        try:
            async with contextlib.aclosing(_read_blocks(spooled.file, block)) as blocks:
                return await upload(blocks, spooled.size, spooled.sha256)
        finally:
            with anyio.CancelScope(shield=True):
                await spooled.file.aclose()
    finally:
        # A client still sending gets the answer only once its body is read: a server that
        # closes with unread data resets the connection, and the answer is lost.
        if succeeded:
            # MAAS already held identical content and skipped the upload (maas-api.md §5.4):
            # the whole body is still owed, and welcome, as it is the image the client meant.
            await _drain(request, max_bytes=limit)
        elif reading or request.headers.get("expect", "").lower() != "100-continue":
            # After a failure only a bounded amount. A client still waiting for "100 Continue"
            # has sent nothing: reading would only invite the body that was refused.
            with anyio.move_on_after(DRAIN_TIMEOUT):
                await _drain(request, max_bytes=DRAIN_MAX_BYTES)
