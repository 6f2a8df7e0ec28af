"""Helpers shared by the MAAS client tests: the keys, a respx-backed client, a form parser."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
import respx

from app.maas import MaasClient, MaasCredentials
from tests.conftest import ADMIN_KEY, USER_KEY

MAAS_URL = "http://maas.test:5240/MAAS"
API = f"{MAAS_URL}/api/2.0/"


@dataclass(frozen=True)
class Part:
    name: str
    value: bytes
    filename: str | None
    content_type: str


def parse_form(request: httpx.Request) -> list[Part]:
    """The parts of a multipart request body, in order, decoded with the stdlib parser."""
    content_type = request.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.content)
    parts = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        parts.append(
            Part(
                name=str(part.get_param("name", header="content-disposition")),
                value=payload,
                filename=part.get_filename(),
                content_type=part.get_content_type(),
            )
        )
    return parts


def mock_client(router: respx.Router, key: str = ADMIN_KEY, **options: Any) -> MaasClient:
    """A client whose requests go to `router` instead of the network."""
    settings: dict[str, Any] = {"retries": 2, "retry_backoff": 0.001, **options}
    transport = httpx.MockTransport(router.async_handler)
    return MaasClient(MAAS_URL, MaasCredentials.from_key(key), transport=transport, **settings)


def mock_router() -> respx.Router:
    return respx.Router(base_url=API, assert_all_called=False)


__all__ = [
    "ADMIN_KEY",
    "API",
    "MAAS_URL",
    "USER_KEY",
    "Part",
    "SimulatorControl",
    "mock_client",
    "mock_router",
    "parse_form",
]


class SimulatorControl:
    """The simulator's /_simulator/ control plane: faults, settings and request counters."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.maas_url = f"{url}/MAAS"

    def faults(self, *rules: dict[str, Any]) -> None:
        httpx.put(f"{self.url}/_simulator/faults", json={"rules": list(rules)}).raise_for_status()

    def configure(self, **settings: float) -> None:
        httpx.put(f"{self.url}/_simulator/config", json=settings).raise_for_status()

    def count(self, method: str, path_pattern: str = "") -> int:
        """Requests seen with `method` whose path matches the regex `path_pattern`."""
        counts: dict[str, int] = httpx.get(f"{self.url}/_simulator/requests").json()["counts"]
        total = 0
        for key, seen in counts.items():
            seen_method, _, path = key.partition(" ")
            if seen_method == method and re.search(path_pattern, path):
                total += seen
        return total
