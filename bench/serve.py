"""A server process for benchmarks: the gateway, or a bare ASGI app returning fixed bytes.

`python -m bench.serve gateway MAAS_URL` or `python -m bench.serve bare FILE`: prints the URL,
serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import Result, at_least, cpu_row
from bench.asgi import BENCH_TOKEN, fetch, load
from bench.upstream import ADMIN_KEY, simulator_process, url_child

if TYPE_CHECKING:
    from app.core.settings import Settings


def bare_app(body: bytes) -> Any:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ServerProcess:
    url: str
    pid: int

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole process so far, every thread included (those that
        ended too): /proc/<pid>/stat's utime + stime, in clock ticks (10 ms), so a figure
        needs at least a second of CPU to be good to 1%."""
        # The command name in parentheses may hold spaces: fields are counted after it.
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / _CLOCK_TICKS

    def thread_cpu_seconds(self) -> float:
        """CPU of the process's live threads, to the nanosecond (/proc/<pid>/task/*/schedstat):
        for short intervals over which no thread ends (one that ends takes its time along)."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

    def rss_bytes(self, field: str = "VmRSS") -> int:
        """Resident memory from /proc: VmRSS now, or VmHWM, the peak so far."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} for process {self.pid}")


@contextmanager
def server_process(*args: str) -> Iterator[ServerProcess]:
    with url_child("bench.serve", *args) as (url, pid):
        yield ServerProcess(url, pid)


@contextmanager
def gateway_settings(maas_url: str, **overrides: Any) -> Iterator[Settings]:
    """A benchmarked gateway's settings: production-like access (a hashed tokens file that
    admits BENCH_TOKEN) without rate limits, which would make a load test measure the limiter."""
    from app.auth.tokens import token_line
    from app.core.permissions import Permission
    from app.core.settings import Settings

    with tempfile.TemporaryDirectory() as directory:
        tokens = Path(directory) / "tokens"
        tokens.write_text(
            token_line(BENCH_TOKEN, "bench", {Permission.READ, Permission.WRITE}) + "\n"
        )
        yield Settings(
            maas_url=maas_url,
            maas_api_key=ADMIN_KEY,
            tokens_file=str(tokens),
            rate_limit_per_second=0,
            **overrides,
        )


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set these environment variables (MAAS_GATEWAY_* settings the server processes read
    when they start) for the block, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def main() -> None:
    from app.cli.server import BackgroundServer
    from app.main import create_app

    kind, target = sys.argv[1], sys.argv[2]
    with contextlib.ExitStack() as stack:
        if kind == "gateway":
            settings = stack.enter_context(gateway_settings(target, log_level="warning"))
            app = create_app(settings)
        else:
            app = bare_app(Path(target).read_bytes())
        with BackgroundServer(app, http="httptools", loop="uvloop") as server:
            print(server.url, flush=True)
            sys.stdin.read()


if __name__ == "__main__":
    main()


def against_bare(
    request_for: Callable[[str, int], bytes],
    *,
    label: str,
    minimum: float,
    cpu_bound: float | None = None,
    resources: int = 50,
    seconds: float = 2.5,
    rounds: int = 3,
    connections: int = 16,
    prepare: Callable[[str, int], bytes] | None = None,
) -> list[Result]:
    """Requests per second of a gateway answering one request over and over (its MAAS the
    simulator with `resources` boot resources), against a bare ASGI app sending the same
    answer's bytes; and each server's CPU per request (at most `cpu_bound` times the bare
    app's, or for information). `{kib}` in `label` becomes the answer's size. Both servers
    stay up and take turns, `rounds` times: each side's best round counts, so a burst of noise
    on a shared machine lowers one round, not the ratio. `prepare`, if given, is sent to the
    gateway once first (e.g. registering a persisted document)."""
    with contextlib.ExitStack() as stack:
        maas_url = stack.enter_context(simulator_process(latency_ms=0, resources=resources))
        gateway = stack.enter_context(server_process("gateway", maas_url))
        host, port = gateway.host_port
        if prepare is not None:
            asyncio.run(fetch(host, port, prepare(host, port)))
        gateway_request = request_for(host, port)
        body = asyncio.run(fetch(host, port, gateway_request))
        stored = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".json"))
        Path(stored.name).write_bytes(body)
        bare = stack.enter_context(server_process("bare", stored.name))
        sides = {
            "gateway": (gateway, gateway_request),
            "bare": (bare, request_for(*bare.host_port)),
        }
        rps = {"gateway": 0.0, "bare": 0.0}
        cpu = {"gateway": float("inf"), "bare": float("inf")}
        for _ in range(rounds):
            for side, (server, request) in sides.items():
                spent = server.cpu_seconds()
                rate, failures, answered = asyncio.run(
                    load(*server.host_port, request, seconds=seconds, connections=connections)
                )
                if failures:
                    raise RuntimeError(f"{failures} non-200 answers from the {side} server")
                rps[side] = max(rps[side], rate)
                cpu[side] = min(cpu[side], (server.cpu_seconds() - spent) / answered * 1e6)
    ratio = rps["gateway"] / rps["bare"]
    target, passed = at_least(ratio, minimum)
    name = label.format(kib=len(body) // 1024)
    return [
        Result(name, rps["gateway"], rps["bare"], ratio, target, passed, unit="/s"),
        cpu_row(
            f"{name.removesuffix(', req/s')}, server CPU per request, µs",
            cpu["gateway"],
            cpu["bare"],
            cpu_bound,
            unit="µs",
        ),
    ]
