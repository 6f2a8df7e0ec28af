"""uvicorn for the gateway: a server that lets the app drain before connections close, run in
the foreground (`maas-gateway serve`) or on a background thread (simulator, tests, benchmarks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import uvicorn

from app.observability.logs import flush_logs


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """Bind a listening socket now, so the port is ours before the server starts (no race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class GatewayServer(uvicorn.Server):
    """uvicorn's server, telling the app when it stops accepting connections.

    uvicorn closes the listening sockets, then every connection: open websockets get a bare
    close (1012). An app with an async `drain()` gets to run it in between, so it can end its
    subscriptions with a `complete` first; in-flight requests still finish within
    `timeout_graceful_shutdown`.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        drain = getattr(self.config.app, "drain", None)
        if drain is not None:
            await drain()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a caught SIGTERM on the way out, and the default handler skips
        # the flush at exit: buffered log lines are written first.
        with super().capture_signals():
            try:
                yield
            finally:
                flush_logs()


class BackgroundServer:
    """A uvicorn server on its own thread and event loop; `url` is set once it listens."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        **uvicorn_options: Any,
    ) -> None:
        self.host = host
        self._sock = bind_socket(host, port)
        self.port: int = self._sock.getsockname()[1]
        # log_config=None: a background server must not reconfigure logging, which would close
        # the host process's handlers (logging.config.dictConfig shuts every handler down).
        options: dict[str, Any] = {
            "lifespan": "on",
            "access_log": False,
            "log_config": None,
            **app_options(app),
            **uvicorn_options,
        }
        self._config = uvicorn.Config(
            app, host=host, port=self.port, log_level=log_level, **options
        )
        self._server = GatewayServer(self._config)
        # The host process owns signals; a background server must not take them over.
        self._server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="uvicorn", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on {self.url} did not start within {timeout}s")
            time.sleep(0.01)
        return self

    def wait(self) -> None:
        """Block until the server stops (polling, so Ctrl-C reaches the main thread)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def app_options(app: Any) -> dict[str, Any]:
    """What the app's settings ask of the server, wherever it runs (serve, tests, benchmarks)."""
    settings = getattr(getattr(app, "state", None), "settings", None)
    if settings is None:
        return {}
    # Each socket's deflate state costs about 50 KiB (zlib's window), which at thousands of
    # subscribers is most of what a socket costs; and every frame sent is compressed.
    return {"ws_per_message_deflate": bool(settings.graphql_ws_compression)}
