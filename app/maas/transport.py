"""The HTTP transports the MAAS client can run on, behind httpx's API (aiohttp is the fast one)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport as _AiohttpTransport

Backend = Literal["aiohttp", "httpx"]
DEFAULT_BACKEND: Backend = "aiohttp"
"""Measured by `python -m bench` (bench/fanout.py: 1 list + 50 details, 20 ms latency, ideal
40 ms): aiohttp 49-51 ms at 12 ms of client CPU per tree; httpx's own pool 258 ms at 227 ms of
CPU, its cost growing with the requests in flight (100 ms at best, capped at 25 in flight)."""


def _translate(exc: BaseException, request: httpx.Request) -> BaseException:
    """The httpx exception that says what happened, so the client can tell what is retryable.

    httpx_aiohttp maps every `ClientConnectionError` (a refused connection, a server that hung
    up mid-response) to `ConnectTimeout`; retrying a POST on that basis could apply it twice.
    """
    original = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if not isinstance(original, aiohttp.ClientError):
        return exc
    message = str(original) or type(original).__name__
    kind: type[httpx.TransportError]
    if isinstance(original, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(original, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(original, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(original, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError
    elif isinstance(original, aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        kind = httpx.ReadError
    elif isinstance(original, aiohttp.InvalidURL):
        kind = httpx.UnsupportedProtocol
    else:
        kind = httpx.NetworkError
    return kind(message, request=request)


class AiohttpTransport(_AiohttpTransport):
    """httpx_aiohttp's transport with aiohttp's errors mapped to the matching httpx errors, and
    without aiohttp's hidden resend: retrying is the client's decision alone."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def get_client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            limit=self.limits.max_connections or 0,
        )
        # The session keeps no cookies: aiohttp's default jar sends every cookie a server set
        # on every later request, whichever caller's credential signs it, and one pool serves
        # every caller (and the client sends to this transport straight, with no jar of its own).
        session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        # aiohttp silently resends a GET/PUT/DELETE once when the peer drops the connection.
        # A chunk PUT appends (maas-api.md §5.5), so a resend could apply it twice; there is no
        # public switch, and tests/maas/test_maas_transport.py fails if this one stops working.
        session._retry_connection = False
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """One exchange, its body read whole: every MAAS answer the client takes is read
        whole anyway, and httpx_aiohttp's streamed, per-chunk response (with a fresh timeout
        object and header conversion per request) cost as much CPU as aiohttp itself
        (docs/architecture.md, "Performance model")."""
        session = self.client
        if not isinstance(session, aiohttp.ClientSession):
            session = self.client = self.get_client()
        data: bytes | httpx.AsyncByteStream | httpx.SyncByteStream | None
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            data = request.stream  # a streamed upload chunk; aiohttp frames it
            request.headers.pop("transfer-encoding", None)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        # aiohttp has no write timeout: a peer that stops reading a chunk would stall the PUT
        # forever. Its connect and read timers fire first in every other case, so a deadline
        # on the whole exchange only ever catches a stalled write.
        budget = sum(value for value in timeouts.values() if value is not None)
        try:
            async with (
                asyncio.timeout(budget or None),
                session.request(
                    request.method,
                    str(request.url),
                    headers=request.headers.multi_items(),
                    data=data,
                    allow_redirects=False,
                    auto_decompress=False,
                    compress=False,
                    timeout=self._client_timeout(timeouts),
                    server_hostname=request.extensions.get("sni_hostname"),
                ) as response,
            ):
                body = await response.read()
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ClientError):
                raise _translate(exc, request) from exc
            raise httpx.WriteTimeout("the request was not sent in time", request=request) from exc
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            raise _translate(exc, request) from exc
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            content=body,
            request=request,
            extensions=extensions,
        )

    def _client_timeout(self, timeouts: dict[str, float | None]) -> aiohttp.ClientTimeout:
        # One per pool's timeouts (they never change), not one per request.
        key = (timeouts.get("connect"), timeouts.get("read"), timeouts.get("pool"))
        known = self._timeouts.get(key)
        if known is None:
            known = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return known


def make_transport(
    backend: Backend, *, verify: ssl.SSLContext, limits: httpx.Limits
) -> httpx.AsyncBaseTransport:
    """A transport with this pool size and TLS context; neither reads proxy environment vars."""
    if backend == "aiohttp":
        return AiohttpTransport(verify=verify, limits=limits, trust_env=False)
    return httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False, retries=0)
