"""A client that leaves mid-request is a 499 in the access line and the metrics, one line and
never a traceback or a 5xx."""

from __future__ import annotations

import logging
import socket
import time

import httpx
import pytest

from tests.gateway import GatewayFactory

BODY_PROMISED = 100_000


def leave_mid_body(url: str, path: str, content_type: str) -> None:
    """Send a well-formed start of a body, then close: nothing in it is wrong but its end."""
    host, port = url.removeprefix("http://").split(":")
    start = b'{"query": "{ bootSou'
    if content_type.startswith("multipart/"):
        start = b'--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n' + start
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Apollo-Require-Preflight: true\r\nContent-Length: {BODY_PROMISED}\r\n\r\n"
        )
        sock.sendall(head.encode() + start)


def requests_by_status(url: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("maas_gateway_http_requests_total{"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            counts[status] = counts.get(status, 0) + float(line.rsplit(" ", 1)[1])
    return counts


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/graphql", "application/json"),
        ("/graphql", "multipart/form-data; boundary=x"),
        ("/api/v1/boot-sources", "application/json"),
    ],
)
def test_a_client_that_leaves_mid_body_is_a_499_not_a_500(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, path: str, content_type: str
) -> None:
    gateway = start_gateway()
    caplog.set_level(logging.INFO)
    for _ in range(3):
        leave_mid_body(gateway.url, path, content_type)
    deadline = time.monotonic() + 30
    while requests_by_status(gateway.url).get("499", 0) < 3:
        assert time.monotonic() < deadline, requests_by_status(gateway.url)
        time.sleep(0.05)
    counts = requests_by_status(gateway.url)
    assert not any(status.startswith("5") for status in counts), counts
    tracebacks = [r for r in caplog.records if r.exc_info or "Exception in ASGI" in r.getMessage()]
    assert tracebacks == []
