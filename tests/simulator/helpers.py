"""Helpers that talk to the simulator the way python-libmaas does: signed OAuth, MIME bodies."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from io import BytesIO
from typing import Any
from urllib.parse import quote

import httpx

API = "/MAAS/api/2.0/"


def oauth_header(
    key: str,
    *,
    nonce: str | None = None,
    timestamp: int | None = None,
    signature: str | None = None,
    realm: str = "OAuth",
    method: str = "PLAINTEXT",
) -> str:
    """The header libmaas sends (maas-api.md §11): PLAINTEXT, `%26<token_secret>`."""
    consumer, token, secret = key.split(":")
    nonce = nonce if nonce is not None else str(secrets.randbelow(10**20))
    timestamp = timestamp if timestamp is not None else int(time.time())
    signature = signature if signature is not None else "&" + secret
    return (
        f'OAuth realm="{realm}", oauth_nonce="{nonce}", oauth_timestamp="{timestamp}", '
        f'oauth_version="1.0", oauth_signature_method="{method}", '
        f'oauth_consumer_key="{consumer}", oauth_token="{token}", '
        f'oauth_signature="{quote(signature, safe="")}"'
    )


@dataclass(frozen=True)
class FilePart:
    """A multipart part with a filename: MAAS reads it from request.FILES."""

    data: bytes
    filename: str | None = None


Field = tuple[str, "str | bytes | int | bool | FilePart"]


def multipart(fields: Sequence[Field]) -> tuple[dict[str, str], bytes]:
    """Build a body exactly as libmaas's build_multipart_message + encode_multipart_message.

    Quoted boundary with `=`, every part base64, and for no fields the header-less empty
    part `--B\\r\\n\\r\\n--B--`.
    """
    message = MIMEMultipart("form-data")
    for name, value in fields:
        if isinstance(value, FilePart):
            part = MIMEApplication(value.data)
            part.add_header(
                "Content-Disposition", "form-data", name=name, filename=value.filename or name
            )
        elif isinstance(value, str):
            part = MIMEApplication(value.encode("utf-8"), charset="utf-8")
            part.add_header("Content-Disposition", "form-data", name=name)
            part.set_type("text/plain")
        else:
            raw = (
                (b"true" if value else b"false")
                if isinstance(value, bool)
                else str(value).encode()
                if isinstance(value, int)
                else value
            )
            part = MIMEApplication(raw)
            part.add_header("Content-Disposition", "form-data", name=name)
        message.attach(part)
    buffer = BytesIO()
    generator = BytesGenerator(buffer, False)
    generator._write_headers = lambda self: None  # type: ignore[method-assign,assignment]
    generator.flatten(message)
    body = b"\r\n".join(buffer.getvalue().splitlines())
    headers = dict(message.items())
    headers["Content-Length"] = str(len(body))
    return headers, body


class Maas:
    """A signed client for one simulator and one API key (None: anonymous)."""

    def __init__(self, url: str, key: str | None, *, timeout: float = 10.0) -> None:
        self.url = url
        self.key = key
        # Plain HTTP on loopback: skip loading a CA bundle (30 ms per client).
        self.http = httpx.Client(base_url=url, timeout=timeout, verify=False)

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Iterable[tuple[str, str]] | dict[str, str] | None = None,
        fields: Sequence[Field] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        sign: bool = True,
    ) -> httpx.Response:
        url = path if path.startswith("/") else API + path
        sent: dict[str, str] = {"Accept": "application/json,*/*;q=0.9"}
        body: bytes | None = content
        if json is not None:
            sent["Content-Type"] = "application/json"
            import json as jsonlib

            body = jsonlib.dumps(json).encode()
        elif content is None and (fields is not None or method in ("POST", "PUT", "DELETE")):
            multipart_headers, body = multipart(fields or [])
            sent.update(multipart_headers)
        if sign and self.key is not None:
            sent["Authorization"] = oauth_header(self.key)
        sent.update(headers or {})
        return self.http.request(method, url, params=params, content=body, headers=sent)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def upload(self, upload_uri: str, chunk: bytes, **kwargs: Any) -> httpx.Response:
        """One chunk PUT as libmaas sends it: raw bytes, octet-stream, signed afresh."""
        headers = {"Content-Type": "application/octet-stream", **kwargs.pop("headers", {})}
        return self.request("PUT", upload_uri, content=chunk, headers=headers, **kwargs)


def control(url: str, method: str, name: str, payload: Any = None) -> httpx.Response:
    """Call a `/_simulator/` control endpoint."""
    return httpx.request(
        method, f"{url}/_simulator/{name}", json=payload, timeout=10.0, verify=False
    )


_KEYS: dict[str, tuple[str, str]] = {}


def keys(url: str) -> tuple[str, str]:
    """(admin key, user key) of the simulator at `url`, as its info endpoint reports them."""
    if url not in _KEYS:
        info = control(url, "GET", "info").json()
        _KEYS[url] = (info["admin_key"], info["user_key"])
    return _KEYS[url]
