"""Drive an ASGI app in-process (no sockets) and load a server over keep-alive HTTP/1.1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

Message = dict[str, Any]

# The gateway requires a credential: benchmarks present a gateway token, as a service would
# (bench.serve.gateway_settings admits it). A bare app ignores it, so both get the same bytes.
BENCH_TOKEN = "mgw_bench-token-known-to-the-benchmarks-only-00000"
AUTHORIZATION = f"Bearer {BENCH_TOKEN}"


def http_scope(method: str, path: str, body: bytes, content_type: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", AUTHORIZATION.encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def call(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """One POST through the app, as a server would make it; returns (status, body)."""
    status = 0
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await call_streaming(app, path, body, send)
    return status, b"".join(chunks)


async def call_streaming(
    app: Any, path: str, body: bytes, send: Any, *, accept: bytes = b"application/json"
) -> None:
    """One POST through the app, its answer's messages handed to `send` as they come."""
    scope = http_scope("POST", path, body, b"application/json")
    if accept != b"application/json":
        scope["headers"] = [*scope["headers"], (b"accept", accept)]
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    await app(scope, receive, send)


def get_request(host: str, port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {AUTHORIZATION}\r\n\r\n"
    ).encode()


def post_request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: {AUTHORIZATION}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def load(
    host: str, port: int, request: bytes, *, seconds: float, connections: int
) -> tuple[float, int, int]:
    """Requests per second over `connections` keep-alive sockets, non-200 answers seen, and
    requests answered."""
    deadline = time.perf_counter() + seconds
    failures = 0

    async def worker() -> int:
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, port)
        done = 0
        try:
            while time.perf_counter() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    failures += 1
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()
        return done

    started = time.perf_counter()
    counts = await asyncio.gather(*(worker() for _ in range(connections)))
    return sum(counts) / (time.perf_counter() - started), failures, sum(counts)


async def fetch(host: str, port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await reader.readexactly(length)
    writer.close()
    if b'"errors"' in body:
        raise RuntimeError(body[:300].decode())
    return body
