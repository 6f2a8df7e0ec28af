"""MaasClient over a real socket against a tiny recording ASGI peer: what arrives upstream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from maas_support import ADMIN_KEY, USER_KEY

from app.cli.server import BackgroundServer
from app.maas import Backend, MaasClient, MaasCredentials
from app.observability.context import RequestRecord, current_request

pytestmark = pytest.mark.anyio

RESOURCE = {"id": 1, "type": "Uploaded", "name": "alma9", "architecture": "amd64/generic"}


class RecordingPeer:
    """Answers every request with one boot resource after `delay_s`, recording what it saw."""

    def __init__(self, delay_s: float = 0.0, set_cookie: bytes | None = None) -> None:
        self.delay_s = delay_s
        self.set_cookie = set_cookie
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = (await receive())["type"]  # lifespan.startup, then lifespan.shutdown
                await send({"type": f"{event}.complete"})
                if event == "lifespan.shutdown":
                    return
        with self._lock:
            self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            with self._lock:
                self.in_flight -= 1
        body = orjson.dumps(RESOURCE)
        headers = [(b"content-type", b"application/json")]
        if self.set_cookie is not None:
            headers.append((b"set-cookie", self.set_cookie))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def slow_peer() -> Iterator[tuple[RecordingPeer, str]]:
    peer = RecordingPeer(delay_s=0.05)
    with BackgroundServer(peer) as server:
        yield peer, f"{server.url}/MAAS"


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
async def test_request_id_and_signature_arrive_upstream(
    slow_peer: tuple[RecordingPeer, str], backend: Backend
) -> None:
    peer, url = slow_peer
    creds = MaasCredentials.from_key(ADMIN_KEY)

    async with MaasClient(url, creds, backend=backend) as maas:
        token = current_request.set(RequestRecord("trace-42"))
        try:
            await maas.get_boot_resource(1)
        finally:
            current_request.reset(token)
        await maas.get_boot_resource(1)

    with_id, without_id = peer.headers
    assert with_id["x-request-id"] == "trace-42"
    assert "x-request-id" not in without_id
    assert with_id["authorization"].startswith('OAuth realm="MAAS API", oauth_consumer_key=')
    assert f'oauth_signature="%26{creds.token_secret}"' in with_id["authorization"]
    assert with_id["authorization"] != without_id["authorization"]


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
async def test_concurrent_requests_are_bounded_by_max_concurrency(
    slow_peer: tuple[RecordingPeer, str], backend: Backend
) -> None:
    peer, url = slow_peer

    async with MaasClient(
        url, MaasCredentials.from_key(ADMIN_KEY), backend=backend, max_concurrency=5
    ) as maas:
        results = await asyncio.gather(*(maas.get_boot_resource(1) for _ in range(20)))

    assert len(results) == 20
    assert peer.peak == 5


async def test_fan_out_runs_concurrently_up_to_the_bound() -> None:
    # Long enough that all 30 arrive before the first answer, even on a busy machine.
    peer = RecordingPeer(delay_s=0.3)

    with BackgroundServer(peer) as server:
        url = f"{server.url}/MAAS"
        async with MaasClient(url, MaasCredentials.from_key(ADMIN_KEY), max_concurrency=64) as maas:
            await asyncio.gather(*(maas.get_boot_resource(1) for _ in range(30)))

    assert peer.peak == 30


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
async def test_cookies_maas_sets_never_ride_on_a_later_request(backend: Backend) -> None:
    # One pool serves callers with different credentials: a session cookie MAAS set for one
    # caller must not go upstream with the next caller's request (nor with the same one's).
    peer = RecordingPeer(set_cookie=b"sessionid=alice-session; Path=/; HttpOnly")
    with BackgroundServer(peer) as server:
        # By name, as MAAS usually is: aiohttp's jar keeps no cookies from IP addresses.
        url = f"http://localhost:{server.port}/MAAS"
        async with MaasClient(url, MaasCredentials.from_key(ADMIN_KEY), backend=backend) as maas:
            await maas.get_boot_resource(1)
            await maas.get_boot_resource(1)
            other = maas.bind(MaasCredentials.from_key(USER_KEY))
            await other.get_boot_resource(1)
    assert len(peer.headers) == 3
    assert [h.get("cookie") for h in peer.headers] == [None, None, None]
