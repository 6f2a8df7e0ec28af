"""Graceful shutdown of a real `maas-gateway serve` process: on SIGTERM it stops accepting,
finishes what is in flight within its bound, and completes open subscriptions."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.cli.server import BackgroundServer
from tests.conftest import ADMIN_KEY
from tests.gateway import set_faults
from tests.observability_support import scrape, value, wait_for

REPO = Path(__file__).resolve().parents[2]
IN_FLIGHT = "maas_gateway_http_requests_in_flight"


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path

    def terminate(self) -> float:
        """Send SIGTERM; return when it was sent (monotonic seconds)."""
        self.process.send_signal(signal.SIGTERM)
        return time.monotonic()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(simulator: BackgroundServer, tmp_path: Path, **settings: str) -> Iterator[Served]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAAS_GATEWAY_")}
    env.update(
        MAAS_GATEWAY_MAAS_URL=f"{simulator.url}/MAAS",
        MAAS_GATEWAY_MAAS_API_KEY=ADMIN_KEY,
        MAAS_GATEWAY_ANONYMOUS_SCOPES="read",
        MAAS_GATEWAY_RATE_LIMIT_PER_SECOND="0",
        MAAS_GATEWAY_PORT=str(port),
        MAAS_GATEWAY_LOG_FORMAT="json",
        MAAS_GATEWAY_READINESS_PROBE_INTERVAL="60",
    )
    env.update({f"MAAS_GATEWAY_{name.upper()}": v for name, v in settings.items()})
    log = tmp_path / "gateway.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(REPO)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, f"http://127.0.0.1:{port}", port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{served.url}/livez", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_finishes_in_flight_requests_and_refuses_new_connections(
    simulator: BackgroundServer, tmp_path: Path
) -> None:
    set_faults(simulator.url, {"path": r"boot-resources/\d+/$", "latency_ms": 1500})
    with serve(simulator, tmp_path, shutdown_timeout="15") as gateway:
        ids = range(1, 17)
        with ThreadPoolExecutor(len(ids)) as pool:
            pending: list[Future[httpx.Response]] = [
                pool.submit(httpx.get, f"{gateway.url}/api/v1/boot-resources/{i}", timeout=30)
                for i in ids
            ]
            wait_for(lambda: value(scrape(gateway.url), IN_FLIGHT, api="rest") == len(ids))
            signalled = gateway.terminate()
            wait_for(lambda: refuses_connections(gateway.port), timeout=1.0)
            assert not any(p.done() for p in pending), "refused while requests were in flight"
            answers = [p.result() for p in pending]
        code = gateway.wait(timeout=15)
        exited = time.monotonic() - signalled
    assert [a.status_code for a in answers] == [200] * len(ids)
    assert sorted(a.json()["id"] for a in answers) == list(ids)
    # uvicorn re-raises the signal once it has shut down: "killed by SIGTERM" is its clean exit.
    assert code in (0, -signal.SIGTERM)
    assert exited < 1.5 + 3, f"took {exited:.1f}s to exit"
    lines = gateway.log_lines()
    served = [line for line in lines if line.get("operation") == "get_boot_resource"]
    assert len(served) == len(ids) and all(line["status"] == 200 for line in served)
    assert any(line.get("message") == "Application shutdown complete." for line in lines)


def test_sigterm_cancels_requests_that_outlast_the_shutdown_timeout(
    simulator: BackgroundServer, tmp_path: Path
) -> None:
    set_faults(simulator.url, {"path": "boot-sources", "hang": True})
    try:
        with (
            serve(simulator, tmp_path, shutdown_timeout="1") as gateway,
            ThreadPoolExecutor(4) as pool,
        ):
            pending = [
                pool.submit(httpx.get, f"{gateway.url}/api/v1/boot-sources/{i}", timeout=30)
                for i in range(1, 5)
            ]
            wait_for(lambda: value(scrape(gateway.url), IN_FLIGHT, api="rest") == 4)
            signalled = gateway.terminate()
            code = gateway.wait(timeout=10)
            exited = time.monotonic() - signalled
            outcomes = []
            for future in pending:
                try:
                    outcomes.append(future.result().status_code)
                except httpx.TransportError:
                    outcomes.append(None)
    finally:
        set_faults(simulator.url)
    assert code in (0, -signal.SIGTERM)
    assert 1.0 <= exited < 1.0 + 3, f"took {exited:.1f}s to exit"
    assert 200 not in outcomes
    assert "timeout graceful shutdown exceeded" in gateway.log.read_text()


def until_closed(ws: ClientConnection) -> list[dict[str, object]]:
    """Every message the server sends until it closes the connection."""
    messages = []
    while True:
        try:
            messages.append(json.loads(ws.recv(timeout=10)))
        except ConnectionClosed:
            return messages


@pytest.mark.parametrize("subscribers", [1, 3])
def test_sigterm_completes_open_subscriptions_before_closing(
    simulator: BackgroundServer, tmp_path: Path, subscribers: int
) -> None:
    query = "subscription { importProgress { importing } }"
    with serve(simulator, tmp_path, import_poll_interval="0.2") as gateway:
        ws_url = gateway.url.replace("http://", "ws://") + "/graphql"
        with connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
            ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
            ids = [str(n) for n in range(subscribers)]
            for sid in ids:
                ws.send(json.dumps({"id": sid, "type": "subscribe", "payload": {"query": query}}))
            for _ in ids:
                assert json.loads(ws.recv(timeout=10))["type"] == "next"
            signalled = gateway.terminate()
            messages = until_closed(ws)
        code = gateway.wait(timeout=10)
        exited = time.monotonic() - signalled
    assert {m["type"] for m in messages} <= {"next", "complete"}, messages
    completed = sorted(str(m["id"]) for m in messages if m["type"] == "complete")
    assert completed == ids, "every subscription completes before the socket closes"
    assert code in (0, -signal.SIGTERM)
    assert exited < 3, f"took {exited:.1f}s to exit"
