"""MAAS API credentials and the OAuth 1.0a PLAINTEXT signer that httpx runs on every request."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from app.core.settings import parse_api_key

# gomaasapi's realm; the server skips any segment that mentions realm (maas-api.md §2.2).
REALM = "MAAS API"


def _escape(value: str) -> str:
    # RFC 5849 §3.6: percent-encode everything but the unreserved characters.
    return quote(value, safe="~")


@dataclass(frozen=True, repr=False)
class MaasCredentials:
    """One MAAS API key, split into its three parts (maas-api.md §2.1)."""

    consumer_key: str
    token_key: str
    token_secret: str

    @classmethod
    def from_key(cls, key: str) -> MaasCredentials:
        """Parse `consumer_key:token_key:token_secret`; raises ValueError on another shape."""
        consumer_key, token_key, token_secret = parse_api_key(key)
        return cls(consumer_key, token_key, token_secret)

    @property
    def fingerprint(self) -> str:
        """A stable, non-reversible id of the whole key: safe in logs and as a cache partition."""
        key = f"{self.consumer_key}:{self.token_key}:{self.token_secret}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    @property
    def sensitive_values(self) -> tuple[str, str, str]:
        """Every part an error message must never echo (MAAS's 401 bodies can quote the token)."""
        return (self.consumer_key, self.token_key, self.token_secret)

    @functools.cached_property
    def _fixed_params(self) -> str:
        # Everything but the nonce and timestamp, escaped once per key instead of per request.
        # The consumer secret is always empty, so the signature is "&" + escaped token secret,
        # percent-encoded once more as every header value is.
        params = (
            ("oauth_consumer_key", self.consumer_key),
            ("oauth_token", self.token_key),
            ("oauth_signature_method", "PLAINTEXT"),
            ("oauth_signature", "&" + _escape(self.token_secret)),
        )
        rendered = ", ".join(f'{name}="{_escape(value)}"' for name, value in params)
        return f'OAuth realm="{REALM}", {rendered}'

    def authorization(self, *, nonce: str, timestamp: int) -> str:
        """The `Authorization` header value for one request (maas-api.md §2.2)."""
        return (
            f'{self._fixed_params}, oauth_timestamp="{timestamp}", '
            f'oauth_nonce="{_escape(nonce)}", oauth_version="1.0"'
        )

    def __repr__(self) -> str:
        return (
            f"MaasCredentials(consumer_key={self.consumer_key!r}, fingerprint={self.fingerprint!r})"
        )

    __str__ = __repr__


class MaasAuth(httpx.Auth):
    """Signs each request afresh: MAAS rejects a reused nonce or a timestamp older than 300 s."""

    requires_request_body = False
    requires_response_body = False

    def __init__(self, credentials: MaasCredentials) -> None:
        self.credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        """Set the request's `Authorization` (the client calls this straight, no flow)."""
        request.headers["Authorization"] = self.credentials.authorization(
            nonce=secrets.token_hex(16), timestamp=int(time.time())
        )

    def __repr__(self) -> str:
        return f"MaasAuth({self.credentials!r})"
