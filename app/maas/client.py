"""The async MAAS 2.0 boot-image client: one shared pool, signing, encoding, retries and uploads."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import hashlib
import logging
import random
import re
import secrets
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlencode

import anyio
import httpx
import orjson

from app.core.errors import (
    GatewayError,
    NotFound,
    UpstreamBadResponse,
    UpstreamTimeout,
    ValidationFailed,
)
from app.core.models import SourceOptions
from app.core.settings import Settings
from app.maas import models
from app.maas.auth import MaasAuth, MaasCredentials
from app.maas.breaker import Breakers, BreakerState
from app.maas.errors import map_failure
from app.maas.transport import DEFAULT_BACKEND, Backend, make_transport
from app.observability.context import REQUEST_ID_HEADER, current_request_id

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
MAX_CHUNK_SIZE = 10 * 1024 * 1024
"""MAAS's packaged nginx rejects bodies over 10 MiB (maas-api.md §3)."""
MAX_BACKOFF = 5.0
USER_AGENT = "maas-gateway"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# The DELETE handler's DoesNotExist escapes as a 500 (maas-api.md §5.6, §9.8).
_DELETE_MISSING = b"matching query does not exist"


class _Retry(enum.Enum):
    READ = "read"
    """Idempotent GET: retry failed connections, dropped connections and 503s."""
    CONNECT = "connect"
    """A write: retry only when the connection failed, so provably nothing was sent."""
    NEVER = "never"
    """An upload chunk appends on the server: never sent twice (maas-api.md §5.5)."""


UpstreamObserver = Callable[[str, str, str, float], None]
"""Told of every exchange with MAAS, retries included: (operation, method, outcome, seconds).
`operation` names the call ("boot-resource read"), `outcome` is the HTTP status ("200") or the
gateway error code of a failed exchange ("UPSTREAM_TIMEOUT"). A plain callback, so this layer
stays free of any metrics or tracing library."""

_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
_READ_RETRYABLE = (*_NOTHING_SENT, httpx.RemoteProtocolError, httpx.ReadError)


@dataclass(frozen=True, slots=True)
class _File:
    """A multipart part with a filename: how MAAS's FileFields must be sent (maas-api.md §6.3)."""

    content: bytes
    filename: str


FormValue = str | int | bool | bytes | Sequence[str] | None
_Form = list[tuple[str, str | _File]]


def _form(**values: FormValue) -> _Form:
    """Parts in MAAS's encoding: None is left out, lists repeat their key, bools are true/false,
    numbers are decimal strings and bytes become a file part (maas-api.md §3, §9.4)."""
    form: _Form = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            form.append((name, "true" if value else "false"))
        elif isinstance(value, int):
            form.append((name, str(value)))
        elif isinstance(value, bytes):
            form.append((name, _File(value, filename=name)))
        elif isinstance(value, str):
            form.append((name, value))
        else:
            form.extend((name, str(item)) for item in value)
    return form


def _encode_multipart(form: _Form) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    while any(
        boundary.encode() in (v.content if isinstance(v, _File) else v.encode()) for _, v in form
    ):
        boundary = secrets.token_hex(16)
    delimiter = f"--{boundary}\r\n".encode()
    parts: list[bytes] = []
    for name, value in form:
        parts.append(delimiter)
        if isinstance(value, _File):
            parts.append(
                f'Content-Disposition: form-data; name="{name}"; filename="{value.filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n".encode()
            )
            parts.append(value.content)
        else:
            parts.append(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
            parts.append(value.encode())
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def normalize_base_url(base_url: str) -> str:
    """The API root (`…/MAAS/api/2.0/`) from the MAAS URL in any of its usual spellings."""
    url = httpx.URL(base_url.strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("the MAAS URL must be an absolute http:// or https:// URL")
    if url.query or url.fragment or url.userinfo:
        raise ValueError("the MAAS URL must not carry a query, fragment or user info")
    path = url.path.rstrip("/")
    if not path.endswith("/api/2.0"):
        path = f"{path}/api/2.0"
    return str(url.copy_with(path=f"{path}/"))


@functools.lru_cache(maxsize=4096)
def _absolute_url(api_root: str, relative: str) -> httpx.URL:
    # Parsing and merging a URL was a third of the client's CPU per request; ids repeat.
    return httpx.URL(api_root + relative)


_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json, */*;q=0.9"}


def _check_id(name: str, value: object) -> int:
    # Ids go into the path unvalidated by MAAS's URL patterns, which 500 on junk (§9.22).
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed(
            f"{name} must be a non-negative integer", fields={name: ["must be an integer"]}
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pool:
    """What every view of one client shares: the connection pool, the bound and the policy."""

    transport: httpx.AsyncBaseTransport
    """Each request goes to it straight, signed and complete: httpx's AsyncClient would add a
    second build, header merge, cookie jar and auth flow per request (docs/architecture.md,
    "Performance model"). No cookie is ever kept, so none set for one caller rides on
    another's request."""
    headers: tuple[tuple[str, str], ...]
    timeouts: dict[str, float | None]
    api_root: str
    semaphore: asyncio.Semaphore
    origin: str
    retries: int
    retry_backoff: float
    chunk_size: int
    cleanup_timeout: float
    exchange_deadline: float
    """Seconds one attempt may take from start to the last byte of the answer."""
    observer: UpstreamObserver | None
    breakers: Breakers | None


class MaasClient:
    """Typed async calls to MAAS's boot-resource, boot-source and selection API.

    All views made by `bind` share one httpx transport, one concurrency bound and one
    policy; each signs with its own credentials. Only the client that built the pool closes it.
    """

    def __init__(
        self,
        base_url: str,
        credentials: MaasCredentials | None = None,
        *,
        connect_timeout: float = 5.0,
        timeout: float = 30.0,
        max_connections: int = 100,
        max_concurrency: int = 64,
        retries: int = 2,
        retry_backoff: float = 0.1,
        verify: Literal[True] | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
        backend: Backend = DEFAULT_BACKEND,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        observer: UpstreamObserver | None = None,
        breaker_threshold: int = 0,
        breaker_cooldown: float = 10.0,
    ) -> None:
        if verify is not True and not isinstance(verify, str):
            raise ValueError("TLS verification cannot be turned off; pass a CA bundle path")
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE} bytes")
        if max_concurrency < 1 or max_connections < 1 or retries < 0 or retry_backoff < 0:
            raise ValueError("pool sizes must be positive and retry settings non-negative")
        api_root = normalize_base_url(base_url)
        if transport is None:
            limits = httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
            transport = make_transport(backend, verify=_ssl_context(verify), limits=limits)
        timeouts = httpx.Timeout(timeout, connect=connect_timeout)
        url = httpx.URL(api_root)
        self._pool = _Pool(
            transport=transport,
            headers=tuple(_HEADERS.items()),
            timeouts=timeouts.as_dict(),
            api_root=api_root,
            semaphore=asyncio.Semaphore(max_concurrency),
            origin=str(url.copy_with(raw_path=b"/")).rstrip("/"),
            retries=retries,
            retry_backoff=retry_backoff,
            chunk_size=chunk_size,
            cleanup_timeout=connect_timeout + timeout,
            exchange_deadline=connect_timeout + timeout,
            observer=observer,
            # 0 turns the breakers off: a client used directly (tests, scripts) fails as MAAS does.
            breakers=Breakers(breaker_threshold, breaker_cooldown) if breaker_threshold else None,
        )
        self._owner = True
        self._set_credentials(credentials)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        credentials: MaasCredentials | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: UpstreamObserver | None = None,
    ) -> MaasClient:
        """A client for `settings.maas_url`, signing with `credentials` or the configured key."""
        if settings.maas_url is None:
            raise ValueError("settings.maas_url is not set")
        if credentials is None and settings.maas_api_key is not None:
            credentials = MaasCredentials.from_key(settings.maas_api_key.get_secret_value())
        return cls(
            settings.maas_url,
            credentials,
            connect_timeout=settings.maas_connect_timeout,
            timeout=settings.maas_timeout,
            max_connections=settings.maas_max_connections,
            max_concurrency=settings.maas_max_concurrency,
            retries=settings.maas_retries,
            retry_backoff=settings.maas_retry_backoff,
            verify=settings.maas_ca_bundle or True,
            transport=transport,
            chunk_size=settings.upload_chunk_size,
            observer=observer,
            breaker_threshold=settings.maas_breaker_threshold,
            breaker_cooldown=settings.maas_breaker_cooldown,
        )

    def _set_credentials(self, credentials: MaasCredentials | None) -> None:
        self.credentials = credentials
        self._auth: MaasAuth | None = MaasAuth(credentials) if credentials else None
        hidden: list[str] = [self._pool.origin, httpx.URL(self._pool.origin).netloc.decode()]
        if credentials is not None:
            hidden.extend(credentials.sensitive_values)
        self._redact = tuple(hidden)

    def bind(self, credentials: MaasCredentials | None) -> MaasClient:
        """A view on the same pool and bound that signs as `credentials` (cheap: no new pool)."""
        view = object.__new__(MaasClient)
        view._pool = self._pool
        view._owner = False
        view._set_credentials(credentials)
        return view

    @property
    def api_root(self) -> str:
        return self._pool.api_root

    def breaker_states(self) -> dict[str, BreakerState]:
        """Each endpoint family's circuit breaker now (empty when the breakers are off)."""
        breakers = self._pool.breakers
        return breakers.snapshot() if breakers is not None else {}

    async def aclose(self) -> None:
        if self._owner:
            await self._pool.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"MaasClient({self.api_root!r}, {self.credentials!r})"

    # Boot resources (maas-api.md §5) ----------------------------------------------------------

    async def list_boot_resources(self, type: str | None = None) -> list[models.BootResource]:
        """Shallow resources (no `sets`); `type` is a filter token: all, synced, uploaded."""
        op = "boot-resources read"
        params = {"type": type} if type is not None else None
        response = await self._call(op, "GET", "boot-resources/", params=params)
        return self._parse(op, response, models.BOOT_RESOURCES.validate_python)

    async def get_boot_resource(self, id: int) -> models.BootResource:
        op = "boot-resource read"
        path = f"boot-resources/{_check_id('id', id)}/"
        response = await self._call(op, "GET", path)
        return self._parse(op, response, models.BootResource.model_validate)

    async def create_boot_resource(
        self,
        name: str,
        architecture: str,
        sha256: str,
        size: int,
        *,
        title: str | None = None,
        filetype: str = "tgz",
        base_image: str | None = None,
        keep_old: bool | None = None,
    ) -> models.BootResource:
        """Create (or add a new set to) an uploaded resource; its file is still to be uploaded."""
        op = "boot-resources create"
        form = _form(
            name=name,
            architecture=architecture,
            sha256=sha256,
            size=size,
            title=title,
            filetype=filetype,
            base_image=base_image,
            keep_old=keep_old,
        )
        response = await self._call(op, "POST", "boot-resources/", form=form, retry=_Retry.CONNECT)
        return self._parse(op, response, models.BootResource.model_validate)

    async def upload_chunk(self, upload_uri: str, data: bytes) -> None:
        """Append one chunk to a file; sent exactly once, never retried (maas-api.md §5.5)."""
        if not data:
            raise ValidationFailed("an upload chunk must not be empty")
        await self._call(
            "boot-resource upload",
            "PUT",
            self._upload_url(upload_uri),
            content=data,
            content_type="application/octet-stream",
            stream_content=True,
            retry=_Retry.NEVER,
        )

    async def delete_boot_resource(self, id: int) -> None:
        path = f"boot-resources/{_check_id('id', id)}/"
        await self._call(
            "boot-resource delete", "DELETE", path, retry=_Retry.CONNECT, missing_on_500=True
        )

    async def start_import(self) -> None:
        await self._call(
            "boot-resources import",
            "POST",
            "boot-resources/",
            params={"op": "import"},
            retry=_Retry.CONNECT,
        )

    async def stop_import(self) -> None:
        await self._call(
            "boot-resources stop_import",
            "POST",
            "boot-resources/",
            params={"op": "stop_import"},
            retry=_Retry.CONNECT,
        )

    async def is_importing(self) -> bool:
        op = "boot-resources is_importing"
        response = await self._call(op, "GET", "boot-resources/", params={"op": "is_importing"})
        value = self._parse(op, response, lambda data: data)
        if not isinstance(value, bool):
            raise map_failure(op, ValueError("not a JSON boolean"))
        return value

    async def upload_boot_resource(
        self,
        name: str,
        architecture: str,
        content: AsyncIterable[bytes],
        size: int,
        sha256: str,
        *,
        title: str | None = None,
        filetype: str = "tgz",
        base_image: str | None = None,
        chunk_size: int | None = None,
    ) -> models.BootResource:
        """Create a resource and stream `content` to it in sequential chunks (maas-api.md §5.5).

        `size` and `sha256` are checked against the bytes as they stream; a mismatch raises
        ValidationFailed before the final chunk is sent, so MAAS never completes a bad file.
        If anything fails after the create (the stream, a check, MAAS, a cancellation) and this
        upload made the resource (its only set is the new one), the resource is deleted again;
        a new set on an existing resource is left for MAAS to replace, as the API cannot delete
        one set. The final re-read is outside that rule: by then the upload is complete.
        """
        chunk_size = self._pool.chunk_size if chunk_size is None else chunk_size
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE} bytes")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValidationFailed("size must be a positive integer", fields={"size": ["> 0"]})
        if not _SHA256.fullmatch(sha256):
            raise ValidationFailed(
                "sha256 must be 64 hexadecimal characters",
                fields={"sha256": ["must be 64 hexadecimal characters"]},
            )
        sha256 = sha256.lower()
        resource = await self.create_boot_resource(
            name, architecture, sha256, size, title=title, filetype=filetype, base_image=base_image
        )
        made_here = len(resource.sets or {}) <= 1
        try:
            target = self._upload_target(resource)
            if target is not None:
                await self._stream_chunks(target, content, size, sha256, chunk_size)
        except BaseException:
            if made_here:
                await self._discard(resource.id)
            raise
        return await self.get_boot_resource(resource.id)

    def _upload_target(self, resource: models.BootResource) -> str | None:
        """The newest set's one file's upload_uri, or None when MAAS already has the content."""
        newest = resource.newest_set
        op = "boot-resources create"
        if newest is None or len(newest.files) != 1:
            raise UpstreamBadResponse(
                f"MAAS {op} failed: the new set does not hold exactly one file"
            )
        file = next(iter(newest.files.values()))
        if file.complete:
            # Identical content is already stored; maascli and libmaas skip the upload (§5.4).
            return None
        if not file.upload_uri:
            raise UpstreamBadResponse(f"MAAS {op} failed: the new file has no upload_uri")
        return file.upload_uri

    async def _stream_chunks(
        self,
        upload_uri: str,
        content: AsyncIterable[bytes],
        size: int,
        sha256: str,
        chunk_size: int,
    ) -> None:
        digest = hashlib.sha256()
        buffer = bytearray()
        received = sent = 0
        async for piece in content:
            received += len(piece)
            if received > size:
                raise ValidationFailed(
                    f"the content is longer than the declared size of {size} bytes",
                    fields={"size": [f"the content has more than {size} bytes"]},
                )
            digest.update(piece)
            buffer += piece
            # The chunk that would complete the file waits until the whole stream is checked.
            while len(buffer) >= chunk_size and sent + chunk_size < size:
                await self.upload_chunk(upload_uri, bytes(buffer[:chunk_size]))
                del buffer[:chunk_size]
                sent += chunk_size
        if received != size:
            raise ValidationFailed(
                f"the content has {received} bytes, not the declared {size}",
                fields={"size": [f"the content has {received} bytes, not {size}"]},
            )
        if digest.hexdigest() != sha256:
            raise ValidationFailed(
                "the content does not match the declared sha256",
                fields={"sha256": [f"the content's sha256 is {digest.hexdigest()}"]},
            )
        await self.upload_chunk(upload_uri, bytes(buffer))

    async def _discard(self, resource_id: int) -> None:
        """Delete a half-made resource, even while the upload is being cancelled."""
        with anyio.move_on_after(self._pool.cleanup_timeout, shield=True) as scope:
            try:
                await self.delete_boot_resource(resource_id)
            except GatewayError as exc:
                if isinstance(exc, NotFound):
                    return
                log.warning("could not delete half-uploaded boot resource %s: %s", resource_id, exc)
        if scope.cancelled_caught:
            log.warning("timed out deleting half-uploaded boot resource %s", resource_id)

    def _upload_url(self, upload_uri: str) -> httpx.URL:
        # upload_uri is a path to join with the origin (maas-api.md §9.2); an absolute URL is
        # only followed to the same origin, so the signature never goes to another host.
        url = httpx.URL(upload_uri)
        same_origin = (
            not url.is_absolute_url
            or str(url.copy_with(raw_path=b"/")).rstrip("/") == self._pool.origin
        )
        if not same_origin or not url.raw_path.startswith(b"/") or upload_uri.startswith("//"):
            raise UpstreamBadResponse("MAAS boot-resource upload failed: unusable upload_uri")
        return httpx.URL(self._pool.origin + url.raw_path.decode("ascii"))

    # Boot sources (maas-api.md §6) ------------------------------------------------------------

    async def list_boot_sources(self) -> list[models.BootSource]:
        op = "boot-sources read"
        response = await self._call(op, "GET", "boot-sources/")
        return self._parse(op, response, models.BOOT_SOURCES.validate_python)

    async def get_boot_source(self, id: int) -> models.BootSource:
        op = "boot-source read"
        response = await self._call(op, "GET", f"boot-sources/{_check_id('id', id)}/")
        return self._parse(op, response, models.BootSource.model_validate)

    async def create_boot_source(
        self,
        url: str,
        *,
        keyring_filename: str | None = None,
        keyring_data: bytes | None = None,
        options: SourceOptions | None = None,
    ) -> models.BootSource:
        """`keyring_data` is the raw keyring, sent as a file part (maas-api.md §6.3);
        `options` are 3.8's own fields, which earlier versions ignore (§6.2)."""
        op = "boot-sources create"
        extra = options.given() if options is not None else {}
        form = _form(url=url, keyring_filename=keyring_filename, keyring_data=keyring_data, **extra)
        response = await self._call(op, "POST", "boot-sources/", form=form, retry=_Retry.CONNECT)
        return self._parse(op, response, models.BootSource.model_validate)

    async def update_boot_source(
        self,
        id: int,
        *,
        url: str | None = None,
        keyring_filename: str | None = None,
        keyring_data: bytes | None = None,
        options: SourceOptions | None = None,
    ) -> models.BootSource:
        """Partial: only the fields given are sent, MAAS keeps the rest (maas-api.md §6.2)."""
        op = "boot-source update"
        extra = options.given() if options is not None else {}
        form = _form(url=url, keyring_filename=keyring_filename, keyring_data=keyring_data, **extra)
        path = f"boot-sources/{_check_id('id', id)}/"
        response = await self._call(op, "PUT", path, form=form, retry=_Retry.CONNECT)
        return self._parse(op, response, models.BootSource.model_validate)

    async def delete_boot_source(self, id: int) -> None:
        path = f"boot-sources/{_check_id('id', id)}/"
        await self._call("boot-source delete", "DELETE", path, retry=_Retry.CONNECT)

    # Boot source selections (maas-api.md §7) --------------------------------------------------

    async def list_boot_source_selections(
        self, boot_source_id: int
    ) -> list[models.BootSourceSelection]:
        op = "boot-source-selections read"
        path = f"boot-sources/{_check_id('boot_source_id', boot_source_id)}/selections/"
        response = await self._call(op, "GET", path)
        return self._parse(op, response, models.BOOT_SOURCE_SELECTIONS.validate_python)

    async def get_boot_source_selection(
        self, boot_source_id: int, id: int
    ) -> models.BootSourceSelection:
        op = "boot-source-selection read"
        response = await self._call(op, "GET", self._selection_path(boot_source_id, id))
        return self._parse(op, response, models.BootSourceSelection.model_validate)

    async def create_boot_source_selection(
        self,
        boot_source_id: int,
        *,
        os: str,
        release: str,
        arches: Sequence[str] | None = None,
        subarches: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
    ) -> models.BootSourceSelection:
        """Lists go as repeated parts; a list left as None is not sent (MAAS's default)."""
        op = "boot-source-selections create"
        path = f"boot-sources/{_check_id('boot_source_id', boot_source_id)}/selections/"
        form = _form(os=os, release=release, arches=arches, subarches=subarches, labels=labels)
        response = await self._call(op, "POST", path, form=form, retry=_Retry.CONNECT)
        return self._parse(op, response, models.BootSourceSelection.model_validate)

    async def update_boot_source_selection(
        self,
        boot_source_id: int,
        id: int,
        *,
        os: str | None = None,
        release: str | None = None,
        arches: Sequence[str] | None = None,
        subarches: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
    ) -> models.BootSourceSelection:
        """Partial: only the fields given are sent (maas-api.md §7.2)."""
        op = "boot-source-selection update"
        form = _form(os=os, release=release, arches=arches, subarches=subarches, labels=labels)
        path = self._selection_path(boot_source_id, id)
        response = await self._call(op, "PUT", path, form=form, retry=_Retry.CONNECT)
        return self._parse(op, response, models.BootSourceSelection.model_validate)

    async def delete_boot_source_selection(self, boot_source_id: int, id: int) -> None:
        path = self._selection_path(boot_source_id, id)
        await self._call("boot-source-selection delete", "DELETE", path, retry=_Retry.CONNECT)

    @staticmethod
    def _selection_path(boot_source_id: int, id: int) -> str:
        source = _check_id("boot_source_id", boot_source_id)
        return f"boot-sources/{source}/selections/{_check_id('id', id)}/"

    # Discovery (maas-api.md §1) ---------------------------------------------------------------

    async def version(self) -> models.MaasVersion:
        op = "version read"
        response = await self._call(op, "GET", "version/")
        return self._parse(op, response, models.MaasVersion.model_validate)

    async def describe(self) -> models.ApiDescription:
        op = "describe read"
        response = await self._call(op, "GET", "describe/")
        return self._parse(op, response, models.ApiDescription.model_validate)

    # The request path -------------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str | httpx.URL,
        *,
        params: dict[str, str] | None = None,
        form: _Form | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        stream_content: bool = False,
        retry: _Retry = _Retry.READ,
        missing_on_500: bool = False,
    ) -> httpx.Response:
        """Send one MAAS request through its family's breaker (failing fast while it is open),
        under the concurrency bound, retrying as `retry` allows."""
        breakers = self._pool.breakers
        with breakers.guard(operation) if breakers is not None else contextlib.nullcontext():
            return await self._exchange(
                operation,
                method,
                path,
                params=params,
                form=form,
                content=content,
                content_type=content_type,
                stream_content=stream_content,
                retry=retry,
                missing_on_500=missing_on_500,
            )

    async def _exchange(
        self,
        operation: str,
        method: str,
        path: str | httpx.URL,
        *,
        params: dict[str, str] | None,
        form: _Form | None,
        content: bytes | None,
        content_type: str | None,
        stream_content: bool,
        retry: _Retry,
        missing_on_500: bool,
    ) -> httpx.Response:
        if form:
            # Multipart for every write, as MAAS documents and its own clients send (§3);
            # writes without fields (op-only POSTs, DELETE) go with no body, as maascli does.
            content, content_type = _encode_multipart(form)
        headers = self._headers(content, content_type, stream_content)
        pool = self._pool
        if isinstance(path, httpx.URL):
            url = path
        else:
            url = _absolute_url(pool.api_root, f"{path}?{urlencode(params)}" if params else path)
        attempt = 0
        while True:
            try:
                response = await self._attempt(
                    operation, method, url, headers, content, stream_content
                )
            except httpx.HTTPError as exc:
                if attempt < pool.retries and self._may_retry(retry, exc):
                    attempt += 1
                    await self._backoff(attempt)
                    continue
                raise map_failure(operation, exc, redact=self._redact) from exc
            if response.is_success:
                return response
            if response.status_code == 503 and retry is _Retry.READ and attempt < pool.retries:
                # MAAS's 503 says Retry-After: 10; a reader would rather fail over to a stale
                # answer than wait that long, so the short backoff applies and the error
                # raised in the end carries the server's Retry-After to the caller.
                attempt += 1
                await self._backoff(attempt)
                continue
            if (
                missing_on_500
                and response.status_code == 500
                and _DELETE_MISSING in response.content
            ):
                raise NotFound(f"MAAS {operation} failed: no such boot resource")
            raise map_failure(operation, response, redact=self._redact)

    @staticmethod
    def _headers(
        content: bytes | None, content_type: str | None, stream_content: bool
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if stream_content and content is not None:
            headers["Content-Length"] = str(len(content))
        sent_id = current_request_id()
        if sent_id:
            headers[REQUEST_ID_HEADER] = sent_id
        return headers

    async def _attempt(
        self,
        operation: str,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        stream_content: bool,
    ) -> httpx.Response:
        """One try of a request, reported to the observer with its outcome; raises
        UpstreamTimeout past the exchange deadline, or the transport's error."""
        pool = self._pool
        body: bytes | AsyncIterator[bytes] | None = content
        if stream_content and content is not None:
            # aiohttp copies a bytes body over 1 MiB and warns about it; one streamed piece
            # with its exact Content-Length goes to the socket as it is.
            body = _one_piece(content)
        request = httpx.Request(
            method,
            url,
            content=body,
            headers=[*pool.headers, *headers.items()],
            extensions={"timeout": pool.timeouts},
        )
        if self._auth is not None:
            self._auth.sign(request)
        started = time.perf_counter()
        try:
            async with pool.semaphore:
                started = time.perf_counter()
                # Read timeouts restart with every piece of a body: a peer that drips its
                # answer would hold the caller forever without a deadline on the whole.
                async with asyncio.timeout(pool.exchange_deadline):
                    response = await _exchange_once(pool.transport, request)
        except TimeoutError as exc:
            timeout = UpstreamTimeout(f"MAAS {operation} failed: no full answer in time")
            self._observe(operation, method, timeout.code, started)
            raise timeout from exc
        except httpx.HTTPError as exc:
            code = map_failure(operation, exc, redact=self._redact).code
            self._observe(operation, method, code, started)
            raise
        self._observe(operation, method, str(response.status_code), started)
        if log.isEnabledFor(logging.DEBUG):  # no string is built for a line nobody reads
            log.debug("MAAS %s %s: %s", method, operation, response.status_code)
        return response

    def _observe(self, operation: str, method: str, outcome: str, started: float) -> None:
        observer = self._pool.observer
        if observer is not None:
            observer(operation, method, outcome, time.perf_counter() - started)

    @staticmethod
    def _may_retry(retry: _Retry, exc: httpx.HTTPError) -> bool:
        if retry is _Retry.READ:
            return isinstance(exc, _READ_RETRYABLE)
        if retry is _Retry.CONNECT:
            return isinstance(exc, _NOTHING_SENT)
        return False

    async def _backoff(self, attempt: int) -> None:
        # Exponential with jitter, so a fleet of gateways does not retry in lockstep.
        ceiling = min(MAX_BACKOFF, self._pool.retry_backoff * 2 ** (attempt - 1))
        jitter = random.uniform(0, ceiling / 2)  # nosec B311  # retry jitter, not a secret
        await asyncio.sleep(ceiling / 2 + jitter)

    def _parse(self, operation: str, response: httpx.Response, validate: Callable[[Any], T]) -> T:
        try:
            return validate(orjson.loads(response.content))
        except ValueError as exc:  # orjson.JSONDecodeError, pydantic.ValidationError
            raise map_failure(operation, exc, redact=self._redact) from exc


async def _exchange_once(
    transport: httpx.AsyncBaseTransport, request: httpx.Request
) -> httpx.Response:
    """The transport's answer, read whole (the aiohttp transport reads it already; httpx's
    own pool streams it, and the connection goes back once it is read)."""
    response = await transport.handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


async def _one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _ssl_context(verify: Literal[True] | str) -> ssl.SSLContext:
    if verify is True:
        return httpx.create_ssl_context()
    return ssl.create_default_context(cafile=verify)
