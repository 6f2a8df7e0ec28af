"""The HTTP transports the MAAS client can run on, behind httpx's API (aiohttp is the fast one)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Literal

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


class _TranslatingStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            raise _translate(exc, self._request) from exc

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            raise _translate(exc, self._request) from exc


class AiohttpTransport(_AiohttpTransport):
    """httpx_aiohttp's transport with aiohttp's errors mapped to the matching httpx errors, and
    without aiohttp's hidden resend: retrying is the client's decision alone."""

    def get_client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            limit=self.limits.max_connections or 0,
        )
        # The session keeps no cookies: aiohttp's default jar sends every cookie a server set
        # on every later request, whichever caller's credential signs it, and one pool serves
        # every caller (the httpx side refuses them too, maas/client.py _NoCookies).
        session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        # aiohttp silently resends a GET/PUT/DELETE once when the peer drops the connection.
        # A chunk PUT appends (maas-api.md §5.5), so a resend could apply it twice; there is no
        # public switch, and tests/maas/test_maas_transport.py fails if this one stops working.
        session._retry_connection = False
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # aiohttp has no write timeout: a peer that stops reading a chunk would stall the PUT
        # forever. Its connect and read timers fire first in every other case, so a deadline
        # on the whole exchange up to the response headers only ever catches a stalled write.
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        budget = sum(value for value in timeouts.values() if value is not None)
        try:
            async with asyncio.timeout(budget or None):
                response = await super().handle_async_request(request)
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ClientError):
                raise _translate(exc, request) from exc
            raise httpx.WriteTimeout("the request was not sent in time", request=request) from exc
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            raise _translate(exc, request) from exc
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _TranslatingStream(response.stream, request)
        return response


def make_transport(
    backend: Backend, *, verify: ssl.SSLContext, limits: httpx.Limits
) -> httpx.AsyncBaseTransport:
    """A transport with this pool size and TLS context; neither reads proxy environment vars."""
    if backend == "aiohttp":
        return AiohttpTransport(verify=verify, limits=limits, trust_env=False)
    return httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False, retries=0)
