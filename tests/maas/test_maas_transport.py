"""Both transports over real sockets: broken peers map to the same errors and retry decisions."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from maas_support import ADMIN_KEY

from app.core.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from app.maas import Backend, MaasClient, MaasCredentials

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["aiohttp", "httpx"])]

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


class Peer:
    """A TCP server that misbehaves on purpose and counts the connections it accepted."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.behaviour(reader, writer)
        finally:
            writer.close()


@asynccontextmanager
async def peer(behaviour: Behaviour) -> AsyncIterator[Peer]:
    server_peer = Peer(behaviour)
    server = await asyncio.start_server(server_peer._handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server_peer.url = f"http://127.0.0.1:{port}/MAAS"
    async with server:
        yield server_peer
        server.close()


def client_for(url: str, backend: Backend, **options: float) -> MaasClient:
    return MaasClient(
        url,
        MaasCredentials.from_key(ADMIN_KEY),
        backend=backend,
        retries=2,
        retry_backoff=0.001,
        **options,  # type: ignore[arg-type]
    )


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)


async def truncate_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{"id"'
    )
    await writer.drain()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(5)


async def test_refused_connection_is_unavailable_and_retried(backend: Backend) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now: every attempt is refused before sending anything.

    async with client_for(f"http://127.0.0.1:{port}/MAAS", backend) as maas:
        with pytest.raises(UpstreamUnavailable, match="could not connect"):
            await maas.list_boot_sources()
        with pytest.raises(UpstreamUnavailable, match="could not connect"):
            await maas.start_import()


async def test_peer_hanging_up_on_a_get_is_retried_then_a_bad_response(backend: Backend) -> None:
    async with peer(hang_up) as server, client_for(server.url, backend) as maas:
        with pytest.raises(UpstreamBadResponse, match="connection dropped"):
            await maas.list_boot_sources()

    assert server.connections == 3


async def test_peer_hanging_up_on_a_post_is_not_retried(backend: Backend) -> None:
    async with peer(hang_up) as server, client_for(server.url, backend) as maas:
        with pytest.raises(UpstreamBadResponse, match="connection dropped"):
            await maas.create_boot_source("http://images.test/", keyring_filename="/k.gpg")

    assert server.connections == 1


async def test_peer_hanging_up_on_a_chunk_is_not_retried(backend: Backend) -> None:
    async with peer(hang_up) as server, client_for(server.url, backend) as maas:
        with pytest.raises(UpstreamBadResponse):
            await maas.upload_chunk("/MAAS/api/2.0/boot-resources/1/upload/1/", b"x" * 1000)

    assert server.connections == 1


async def test_body_cut_short_is_a_bad_response(backend: Backend) -> None:
    async with peer(truncate_body) as server, client_for(server.url, backend) as maas:
        with pytest.raises(UpstreamBadResponse, match="connection dropped"):
            await maas.stop_import()

    assert server.connections == 1


async def test_silent_peer_is_a_timeout_and_not_retried(backend: Backend) -> None:
    async with (
        peer(never_answer) as server,
        client_for(server.url, backend, timeout=0.2) as maas,
    ):
        with pytest.raises(UpstreamTimeout, match="timed out waiting for the response"):
            await maas.list_boot_resources()

    assert server.connections == 1


async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)


async def test_peer_that_stops_reading_a_chunk_is_a_timeout(backend: Backend) -> None:
    # aiohttp has no write timeout of its own; a stalled PUT must still end.
    async with (
        peer(never_read) as server,
        client_for(server.url, backend, timeout=0.3, connect_timeout=0.3) as maas,
    ):
        with (
            anyio.fail_after(4),
            pytest.raises(UpstreamTimeout, match=r"timed out sending|no full answer in time"),
        ):
            await maas.upload_chunk(
                "/MAAS/api/2.0/boot-resources/1/upload/1/", b"x" * (10 * 1024 * 1024)
            )

    assert server.connections == 1
