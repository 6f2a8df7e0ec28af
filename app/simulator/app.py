"""The simulator's raw ASGI app: /MAAS/ traffic with latency and faults, /_simulator/ controls."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from app.simulator.auth import Credentials, NonceStore
from app.simulator.config import SimulatorConfig
from app.simulator.describe import api_hash
from app.simulator.faults import DRIP_BYTES, FaultPlan, FaultRule, FaultSet, fault_response
from app.simulator.handlers import ApiRequest, Region
from app.simulator.parsing import parse_query
from app.simulator.responses import JSON, BodyTooLarge, Response, nginx_page
from app.simulator.state import MaasState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONTROL_PREFIX = "/_simulator/"


class _Disconnected(Exception):
    """The client went away before the request body was read."""


class _DropConnection(Exception):
    """A fault asked for the connection to be cut mid-request."""


class _TooLarge(Exception):
    """A body without Content-Length grew past nginx's limit."""


@dataclass
class RuntimeSettings:
    """The knobs `PUT /_simulator/config` may change while the simulator runs."""

    latency_ms: float
    jitter_ms: float
    import_duration_s: float


class Simulator:
    """A MAAS region for the boot-image API, as an ASGI application."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.version = config.version
        self.admin_key = config.resolved_admin_key()
        self.user_key = config.resolved_user_key()
        self._credentials = Credentials(self.admin_key, self.user_key)
        self._api_hash = api_hash(self.version).encode("ascii")
        # A threading lock: handlers never await while holding it, and the CLI or tests may
        # reach in from another thread.
        self._lock = threading.Lock()
        self._hung: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._build()

    def _build(self) -> None:
        config = self.config
        self.settings = RuntimeSettings(
            config.latency_ms, config.jitter_ms, config.import_duration_s
        )
        self.faults = FaultSet(config.faults)
        self.rng = random.Random(f"maas-simulator-faults:{config.seed}")  # nosec B311  # dice
        state = MaasState(self.version, random.Random(config.seed))  # nosec B311  # fake data
        state.seed(config.extra_resources)
        self.state = state
        self.counts: dict[str, int] = {}
        self.total = 0
        self.region = Region(
            state,
            self.version,
            self._credentials,
            NonceStore(),
            lambda: self.settings.import_duration_s,
        )

    def reset(self) -> None:
        """State, settings, faults and counters back to how the config made them."""
        with self._lock:
            self._build()
        self._release_hung()

    def _release_hung(self) -> None:
        with self._lock:
            hung = list(self._hung)
        for loop, event in hung:
            loop.call_soon_threadsafe(event.set)

    # -- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            await self._control(scope, receive, send)
        else:
            await self._serve(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._release_hung()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            self.counts[f"{method} {path}"] = self.counts.get(f"{method} {path}", 0) + 1
            self.total += 1
            plan = self.faults.plan(method, path, self.rng)
            delay = self.settings.latency_ms / 1000.0 + plan.delay_s
            if self.settings.jitter_ms:
                delay += self.rng.uniform(0.0, self.settings.jitter_ms) / 1000.0
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        if declared > self.config.max_body_bytes:
            await self._send(send, BodyTooLarge().to_response(self.version))
            return
        try:
            body = await self._read_body(receive, plan)
        except _Disconnected:
            return
        except _DropConnection:
            await self._drop(send)
            return
        except _TooLarge:
            await self._send(send, BodyTooLarge().to_response(self.version))
            return
        if delay > 0:
            await asyncio.sleep(delay)
        if plan.hang:
            await self._hang(receive, send)
            return
        if plan.drop:
            await self._drop(send)
            return
        if plan.status is not None:
            await self._send(send, fault_response(plan.status, plan.body, self.version))
            return
        server = scope.get("server") or ("127.0.0.1", 80)
        request = ApiRequest(
            method=method,
            path=path,
            scheme=scope.get("scheme", "http"),
            host=headers.get("host") or f"{server[0]}:{server[1]}",
            headers=headers,
            query=parse_query(scope.get("query_string", b"")),
            body=body,
            now=time.time(),
        )
        with self._lock:
            response = self.region.handle(request)
        if plan.malformed:
            response = _malformed(response)
        await self._send(send, response, drip_s=plan.drip_s)

    async def _read_body(self, receive: Receive, plan: FaultPlan) -> bytes:
        chunks: list[bytes] = []
        size = 0
        limit = self.config.max_body_bytes
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
                if plan.drop_after_bytes is not None and size >= plan.drop_after_bytes:
                    raise _DropConnection
                if size > limit:
                    raise _TooLarge
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _hang(self, receive: Receive, send: Send) -> None:
        """Hold the request until the client gives up, or a reset releases it."""
        release = asyncio.Event()
        entry = (asyncio.get_running_loop(), release)
        with self._lock:
            self._hung.add(entry)
        released = asyncio.ensure_future(release.wait())
        try:
            while True:
                incoming = asyncio.ensure_future(receive())
                done, _ = await asyncio.wait(
                    {incoming, released}, return_when=asyncio.FIRST_COMPLETED
                )
                if released in done:
                    incoming.cancel()
                    # nginx's proxy_read_timeout would end it the same way.
                    await self._send(send, nginx_page(504, "Gateway Time-out"))
                    return
                if incoming.result()["type"] == "http.disconnect":
                    return
        finally:
            released.cancel()
            with self._lock:
                self._hung.discard(entry)

    async def _drop(self, send: Send) -> None:
        # ASGI cannot close a socket outright: start a response that promises a body, then
        # return without it, and uvicorn aborts the connection.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": True})

    async def _send(self, send: Send, response: Response, *, drip_s: float | None = None) -> None:
        raw_headers: list[tuple[bytes, bytes]] = []
        if response.content_type is not None:
            raw_headers.append((b"content-type", response.content_type.encode("latin-1")))
        raw_headers.append((b"content-length", str(len(response.body)).encode("ascii")))
        for name, value in response.headers:
            raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        if response.api:
            raw_headers.append((b"x-maas-api-hash", self._api_hash))
            raw_headers.append((b"vary", b"Authorization"))
        await send(
            {"type": "http.response.start", "status": response.status, "headers": raw_headers}
        )
        if drip_s is None:
            await send({"type": "http.response.body", "body": response.body})
            return
        body = response.body
        for start in range(0, len(body), DRIP_BYTES):
            await asyncio.sleep(drip_s)
            piece = body[start : start + DRIP_BYTES]
            more = start + DRIP_BYTES < len(body)
            await send({"type": "http.response.body", "body": piece, "more_body": more})

    # -- control plane -------------------------------------------------------------------------

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        name = scope["path"][len(CONTROL_PREFIX) :].strip("/")
        try:
            body = await self._read_body(receive, FaultPlan())
        except (_Disconnected, _DropConnection, _TooLarge):
            return
        handlers: dict[tuple[str, str], Callable[[bytes], Response]] = {
            ("reset", "POST"): self._control_reset,
            ("requests", "GET"): self._control_requests,
            ("requests", "DELETE"): self._control_clear_requests,
            ("config", "GET"): self._control_config,
            ("config", "PUT"): self._control_set_config,
            ("faults", "GET"): self._control_faults,
            ("faults", "PUT"): self._control_set_faults,
            ("faults", "POST"): self._control_add_fault,
            ("faults", "DELETE"): self._control_clear_faults,
            ("info", "GET"): self._control_info,
        }
        handler = handlers.get((name, method))
        if handler is None:
            known = {path for path, _ in handlers}
            if name in known:
                allowed = ", ".join(sorted(m for p, m in handlers if p == name))
                response = _json({"error": f"method {method} not allowed"}, 405)
                response.headers.append(("Allow", allowed))
            else:
                response = _json({"error": f"no control endpoint {scope['path']}"}, 404)
        else:
            try:
                response = handler(body)
            except ValueError as exc:
                response = _json({"error": str(exc)}, 400)
        await self._send(send, response)

    def _control_reset(self, body: bytes) -> Response:
        self.reset()
        return _json({"status": "reset"})

    def _control_requests(self, body: bytes) -> Response:
        with self._lock:
            return _json({"total": self.total, "counts": dict(self.counts)})

    def _control_clear_requests(self, body: bytes) -> Response:
        with self._lock:
            self.counts = {}
            self.total = 0
        return Response(204, b"", None)

    def _control_config(self, body: bytes) -> Response:
        with self._lock:
            return _json(asdict(self.settings))

    def _control_set_config(self, body: bytes) -> Response:
        changes = _load_object(body)
        unknown = sorted(set(changes) - {"latency_ms", "jitter_ms", "import_duration_s"})
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)}")
        for name, value in changes.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
        with self._lock:
            for name, value in changes.items():
                setattr(self.settings, name, float(value))
            return _json(asdict(self.settings))

    def _control_faults(self, body: bytes) -> Response:
        with self._lock:
            return _json({"rules": self.faults.describe()})

    def _control_set_faults(self, body: bytes) -> Response:
        payload = _load_object(body)
        rules = payload.get("rules")
        if not isinstance(rules, list):
            raise ValueError('expected {"rules": [...]}')
        parsed = [FaultRule.from_dict(rule) for rule in rules]
        with self._lock:
            self.faults.replace(parsed)
            listed = self.faults.describe()
        self._release_hung()
        return _json({"rules": listed})

    def _control_add_fault(self, body: bytes) -> Response:
        rule = FaultRule.from_dict(_load_object(body))
        with self._lock:
            self.faults.replace([*self._active_rules(), rule])
            return _json({"rules": self.faults.describe()})

    def _active_rules(self) -> list[FaultRule]:
        return [FaultRule.from_dict(entry) for entry in self.faults.describe()]

    def _control_clear_faults(self, body: bytes) -> Response:
        with self._lock:
            self.faults.clear()
        self._release_hung()
        return Response(204, b"", None)

    def _control_info(self, body: bytes) -> Response:
        return _json(
            {
                "maas_version": self.version.series,
                "version": self.version.version_string,
                "seed": self.config.seed,
                "admin_key": self.admin_key,
                "user_key": self.user_key,
                "api_url": "/MAAS/api/2.0/",
            }
        )


def _json(payload: Any, status: int = 200) -> Response:
    return Response(status, orjson.dumps(payload), "application/json")


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    return payload


def _malformed(response: Response) -> Response:
    """Status 200, a JSON content type, and a body cut short so it cannot parse."""
    body = response.body
    cut = body[: len(body) // 2] if len(body) >= 4 else b'{"'
    if cut.strip() in (b"", b"[", b"{"):
        cut = b'{"id": 1, "na'
    return Response(200, cut, JSON, list(response.headers), api=response.api)


def create_simulator(config: SimulatorConfig | None = None) -> Simulator:
    """Build a simulator from `config` (defaults when None); nothing is built at import time."""
    return Simulator(config or SimulatorConfig())
