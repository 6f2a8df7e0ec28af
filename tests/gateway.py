"""Test helpers: a real gateway on a loopback socket, a GraphQL client, the simulator's counters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.auth.tokens import new_token, token_line
from app.cli.server import BackgroundServer
from app.core.permissions import parse_permissions
from app.core.settings import Settings
from app.maas.auth import MaasCredentials
from app.maas.client import MaasClient
from app.main import create_app

T = TypeVar("T")
GatewayFactory = Callable[..., BackgroundServer]
"""Starts a gateway with setting overrides (the `start_gateway` fixture)."""

# Well-formed, but unknown to the simulator.
WRONG_KEY = "WrongConsumerKey00:WrongTokenKey00000:WrongSecret0000000000000000000000"


def gateway_settings(simulator_url: str, api_key: str, **overrides: Any) -> Settings:
    """Settings for a test gateway. Unless a test configures authentication itself, callers
    are anonymous with every scope and no rate limit, so suites about other things need no
    credentials (tests/auth/ covers what production defaults refuse)."""
    if overrides.get("auth_mode", "service") == "service" and "tokens_file" not in overrides:
        overrides.setdefault("anonymous_scopes", "read,write,admin")
    overrides.setdefault("rate_limit_per_second", 0)
    return Settings(maas_url=f"{simulator_url}/MAAS", maas_api_key=api_key, **overrides)


def write_tokens(path: Path, **scopes: str) -> dict[str, str]:
    """A tokens file granting each name its scopes (`read,write`); the plain tokens by name."""
    tokens = {name: new_token() for name in scopes}
    lines = [token_line(tokens[name], name, parse_permissions(s)) for name, s in scopes.items()]
    path.write_text("# gateway tokens\n" + "\n".join(lines) + "\n")
    return tokens


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@contextmanager
def running_gateway(settings: Settings) -> Iterator[BackgroundServer]:
    app = create_app(settings)
    with BackgroundServer(app) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server


def gql(
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> httpx.Response:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return httpx.post(f"{url}/graphql", json=payload, headers=headers, timeout=timeout)


# A running gateway's readiness probe asks for this on its own schedule, whatever a test does.
READINESS_PROBE = "GET /MAAS/api/2.0/version/"


def upstream_counts(simulator_url: str, *, probes: bool = False) -> dict[str, int]:
    """Calls the simulator saw since the last reset, by method and path. Readiness probes of
    any gateway still running are left out unless `probes`: they are not the operation under
    test, and come on their own schedule."""
    body = httpx.get(f"{simulator_url}/_simulator/requests").json()
    counts: dict[str, int] = body["counts"]
    if not probes:
        counts.pop(READINESS_PROBE, None)
    return counts


def reset_counts(simulator_url: str) -> None:
    httpx.delete(f"{simulator_url}/_simulator/requests").raise_for_status()


def set_faults(simulator_url: str, *rules: dict[str, Any]) -> None:
    httpx.put(f"{simulator_url}/_simulator/faults", json={"rules": list(rules)}).raise_for_status()


def set_simulator_config(simulator_url: str, **config: Any) -> None:
    httpx.put(f"{simulator_url}/_simulator/config", json=config).raise_for_status()


def maas_call(simulator_url: str, api_key: str, call: Callable[[MaasClient], Awaitable[T]]) -> T:
    """Run one call on a fresh MAAS client straight to the simulator (ground truth for tests)."""

    async def run() -> T:
        credentials = MaasCredentials.from_key(api_key)
        async with MaasClient(f"{simulator_url}/MAAS", credentials) as client:
            return await call(client)

    return asyncio.run(run())
